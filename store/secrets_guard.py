"""The one place that keeps API keys out of the database.

A run config, a judge spec or a job's params can easily carry the key a user typed into the sidebar; once in
DuckDB it would be copied into manifests, exports and bug reports. Every JSON value the store writes passes
``refuse_secrets`` (it raises, naming the field, so the caller fixes the source rather than losing data
silently), and free-text columns such as ``error`` pass ``redact_secrets`` (an SDK error message must still be
recorded, just without the key). Configs name the *environment variable* instead: ``api_key_env`` is fine.

    refuse_secrets({"judge": {"api_key": "sk-..."}}, "config")   # ValueError: ... config.judge.api_key
"""

from __future__ import annotations

import re
from typing import Any

# Key names compared after lower-casing and dropping everything but letters and digits,
# so "api_key", "API-Key", "x-api-key" and "OPENAI_API_KEY" all match.
_SECRET_KEY_NAMES = {"apikey", "xapikey", "authorization", "password", "secretkey", "clientsecret",
                     "accesstoken", "bearertoken", "authtoken"}
# OpenAI/Anthropic style keys ("sk-proj-...", "sk-ant-api03-...") and HTTP bearer credentials.
# The length floor keeps ordinary words like "sk-learn" out.
_SECRET_VALUE = re.compile(r"^\s*(sk-[A-Za-z0-9_\-]{16,}|Bearer\s+\S{8,})\s*$")
_SECRET_IN_TEXT = re.compile(r"sk-[A-Za-z0-9_\-]{16,}|Bearer\s+[A-Za-z0-9._\-]{8,}")


def is_secret_key(key: str) -> bool:
    normal = re.sub(r"[^a-z0-9]", "", key.lower())
    return normal in _SECRET_KEY_NAMES or normal.endswith("apikey")


def refuse_secrets(value: Any, field: str) -> None:
    """Raise ValueError naming the path (e.g. ``config.judge.api_key``) of the first secret-looking item.

    A secret-named key whose value is empty (None or "") is allowed: it stores no secret, and config
    dataclasses often carry such a field with a None default.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{field}.{key}"
            if is_secret_key(str(key)) and item not in (None, ""):
                raise ValueError(f"refusing to store a secret: {path} looks like an API key or credential; "
                                 f"pass the name of an environment variable instead (e.g. api_key_env)")
            refuse_secrets(item, path)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            refuse_secrets(item, f"{field}[{index}]")
    elif isinstance(value, str) and _SECRET_VALUE.match(value):
        raise ValueError(f"refusing to store a secret: the value of {field} looks like an API key")


def redact_secrets(text: str | None) -> str | None:
    """``text`` with anything key-shaped replaced by ``[redacted]`` (for error and progress messages)."""
    if text is None:
        return None
    return _SECRET_IN_TEXT.sub("[redacted]", text)
