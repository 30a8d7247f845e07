"""The one place that keeps API keys out of the database.

Two kinds of data, two rules:

* **What a person wrote** (a run config, a judge spec, a job's params, a manifest) passes ``refuse_secrets``: a
  secret-named field with a value, a key-shaped value or the value of a key from the environment raises, naming
  the field, so the caller fixes the source instead of losing data silently. Configs name the *environment
  variable* instead: ``api_key_env`` is fine.
* **What a model produced** (candidates, judge rationales and raw replies, eval outputs, pair texts) passes
  ``redact_output``: a completion that merely *looks* like a key (``sk-proj-...``) is the model's doing, not the
  user's, so it is replaced by ``[redacted]`` and counted, and the run goes on. Failing a run over it would let any
  policy that learned to print key-like strings stop training.

Free-text columns such as ``error`` pass ``redact_secrets`` (an SDK error message must still be recorded, just
without the key). All three also catch the literal values of secret-named environment variables
(``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``...), whatever their shape.

    refuse_secrets({"judge": {"api_key": "sk-..."}}, "config")   # ValueError: ... config.judge.api_key
    rows, n = redact_rows(rows, ("text", "verification"))         # n key-shaped strings now read [redacted]
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable

REDACTED = "[redacted]"
# Key names compared after lower-casing and dropping everything but letters and digits,
# so "api_key", "API-Key", "x-api-key" and "OPENAI_API_KEY" all match.
_SECRET_KEY_NAMES = {"apikey", "xapikey", "authorization", "password", "secretkey", "clientsecret",
                     "accesstoken", "bearertoken", "authtoken"}
# OpenAI/Anthropic style keys ("sk-proj-...", "sk-ant-api03-...") and HTTP bearer credentials.
# The length floor keeps ordinary words like "sk-learn" out.
_SECRET_VALUE = re.compile(r"^\s*(sk-[A-Za-z0-9_\-]{16,}|Bearer\s+\S{8,})\s*$")
_SECRET_IN_TEXT = re.compile(r"sk-[A-Za-z0-9_\-]{16,}|Bearer\s+[A-Za-z0-9._\-]{8,}")
# Environment variables whose values are credentials (checked by name, like keys above); shorter values are too
# likely to occur by chance in ordinary text to be worth replacing.
_ENV_SECRET_SUFFIXES = ("apikey", "token", "secret", "password", "secretkey")
_ENV_SECRET_MIN_LEN = 8


def is_secret_key(key: str) -> bool:
    normal = re.sub(r"[^a-z0-9]", "", key.lower())
    return normal in _SECRET_KEY_NAMES or normal.endswith("apikey")


def env_secrets() -> tuple[str, ...]:
    """The values of this process's secret-named environment variables, longest first (so a key that contains
    another is replaced whole)."""
    values = {value for name, value in os.environ.items()
              if len(value) >= _ENV_SECRET_MIN_LEN
              and re.sub(r"[^a-z0-9]", "", name.lower()).endswith(_ENV_SECRET_SUFFIXES)}
    return tuple(sorted(values, key=len, reverse=True))


def refuse_secrets(value: Any, field: str, env: tuple[str, ...] | None = None) -> None:
    """Raise ValueError naming the path (e.g. ``config.judge.api_key``) of the first secret-looking item.

    A secret-named key whose value is empty (None, "" or an earlier ``[redacted]``) is allowed: it stores no
    secret, and config dataclasses often carry such a field with a None default.
    """
    env = env_secrets() if env is None else env
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{field}.{key}"
            if is_secret_key(str(key)) and item not in (None, "", REDACTED):
                raise ValueError(f"refusing to store a secret: {path} looks like an API key or credential; "
                                 f"pass the name of an environment variable instead (e.g. api_key_env)")
            refuse_secrets(item, path, env)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            refuse_secrets(item, f"{field}[{index}]", env)
    elif isinstance(value, str):
        if _SECRET_VALUE.match(value):
            raise ValueError(f"refusing to store a secret: the value of {field} looks like an API key")
        if any(secret in value for secret in env):
            raise ValueError(f"refusing to store a secret: the value of {field} contains the value of a "
                             f"secret-named environment variable")


def _redact_text(text: str, env: tuple[str, ...]) -> tuple[str, int]:
    count = 0
    for secret in env:
        if secret in text:
            count += text.count(secret)
            text = text.replace(secret, REDACTED)
    if "sk-" not in text and "Bearer" not in text:  # the common case, without a regex pass
        return text, count
    text, n = _SECRET_IN_TEXT.subn(REDACTED, text)
    return text, count + n


def redact_secrets(text: str | None) -> str | None:
    """``text`` with anything key-shaped (and any secret env value) replaced by ``[redacted]`` (for error and
    progress messages)."""
    if text is None:
        return None
    return _redact_text(text, env_secrets())[0]


def redact_output(value: Any, env: tuple[str, ...] | None = None) -> tuple[Any, int]:
    """``value`` (text, or JSON made of dicts/lists) with every key-shaped string and every value under a
    secret-named key replaced by ``[redacted]``, and how many were replaced. The input is not modified."""
    env = env_secrets() if env is None else env
    if isinstance(value, str):
        return _redact_text(value, env)
    if isinstance(value, dict):
        out, total = {}, 0
        for key, item in value.items():
            if is_secret_key(str(key)) and item not in (None, "", REDACTED):
                out[key], n = REDACTED, 1
            else:
                out[key], n = redact_output(item, env)
            total += n
        return out, total
    if isinstance(value, (list, tuple)):
        items = [redact_output(item, env) for item in value]
        return type(value)(item for item, _ in items), sum(n for _, n in items)
    return value, 0


def redact_rows(rows: Iterable[dict[str, Any]], columns: Iterable[str]) -> tuple[list[dict[str, Any]], int]:
    """Rows with their model-output ``columns`` passed through ``redact_output`` (rows without a hit are returned
    as they were), and the total number of redactions."""
    env, columns = env_secrets(), tuple(columns)
    out, total = [], 0
    for row in rows:
        changed = {}
        for column in columns:
            if row.get(column) is not None:
                value, n = redact_output(row[column], env)
                if n:
                    changed[column], total = value, total + n
        out.append({**row, **changed} if changed else row)
    return out, total
