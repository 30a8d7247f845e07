"""RLAIF Workbench: the engine (config, data, policy, verifiers, judges, anchors, pairs, training, evaluation, gates,
manifests), the loop that runs it (``rlaif.loop``), and its two faces (``rlaif.cli``, ``rlaif.workbench``).

The engine knows nothing of its faces: nothing outside ``rlaif.cli`` and ``rlaif.workbench`` imports them, and only
the workbench's page context imports Streamlit (``tests/test_layers.py`` keeps it so).
"""

__version__ = "0.1.0"
