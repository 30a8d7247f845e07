"""The workbench's support code, a face of the engine like the CLI: what ``app.py`` and the pages in ``pages/`` share.

Modules: ``page`` (the page context and the table of pages; with ``app.py`` and ``pages/`` the only code that
imports Streamlit), ``stores`` (one open store per database file), ``projects`` (configs, forms, the project's judge
and cost), ``jobs`` (background runs), ``charts`` (Plotly figures), ``tables`` (row shaping for Browse and friends),
``rubric_edit`` (diffs and flips), ``auth`` (users and roles). The engine never imports this package.
"""
