"""The anchor file formats, one small module each, behind :mod:`rlaif.anchors.importers` (the public entry point).

Why split: each shape has its own rules and its own way to go wrong, and a reader of one should not wade through the
others. ``readers`` turns a file (JSONL, CSV, Parquet, JSON; gzip-compressed or not; with or without a byte-order mark)
into numbered records; ``tabular`` parses preference / HH-RLHF / pairwise records, ``columns`` decides which pairwise
columns are labels (and refuses files whose labels would be dropped); ``labelstudio`` and ``argilla`` read those
tools' exports, sharing ``tool_fields``; ``fields`` holds what every shape shares; ``options`` is the one options
class; ``guide`` is the format guide the CLI's ``--help`` prints. Nothing here writes to the store.

    parsed = rlaif.anchors.importers.parse_anchor_file("export.json", options=ImportOptions(format="labelstudio"))
"""
