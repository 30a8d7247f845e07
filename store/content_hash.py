"""Canonical JSON and the sha256 ids built on it.

Content-addressed ids (dataset_id, rubric_version, manifest ids) must not change when a dict is built in a
different key order or pretty-printed differently, so everything hashed goes through one canonical encoding:
sorted keys, no whitespace, UTF-8, no NaN (NaN is not JSON and would make "equal" bodies hash apart).

    version = content_hash({"name": "sql", "criteria": [...]})   # 64 hex chars
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """The one byte-stable JSON text of ``value``; raises TypeError/ValueError for non-JSON values."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(value: Any) -> str:
    """sha256 hex digest of ``canonical_json(value)``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
