"""Who may use the workbench and for what: users from Streamlit secrets or the environment, two roles.

Why this shape: on a laptop the server binds 127.0.0.1 and the one local user is an admin, with no sign-in. Served
to a team, every person signs in and an *annotator* may only label: no runs (GPU time), no rubric edits, no exports
and no API spending. Passwords are never stored in clear: a user line carries a salted PBKDF2 hash (or, for quick
set-ups, a bare sha256 hex). Pages check ``user.can(action)`` before acting AND the router hides what a role may not
open, so hiding a menu entry is never the only guard.

Serving beyond this machine without users would hand admin rights to the network, so it is refused before the
server starts (``rlaif workbench`` calls ``check_serving`` first) and, for a direct ``streamlit run``, the app stops
the server at its first script run (``app.py``). Why this module is not in ``rlaif.workbench``: both faces need it
(the CLI's launcher and the app), and it needs nothing but the standard library.

    RLAIF_USERS="ana:admin:pbkdf2_sha256$...,bo:annotator:pbkdf2_sha256$..."  rlaif workbench --address 0.0.0.0
    python -m rlaif.workbench.auth hash bo annotator            # prints a line for RLAIF_USERS / secrets.toml
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import tomllib  # stdlib from 3.11, which the workbench's Streamlit requires (it reads secrets with it too)

ROLES = ("admin", "annotator")
ACTIONS = ("label", "browse", "calibrate", "manage_anchors", "run", "edit_rubric", "export", "spend_api")
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(ACTIONS),
    "annotator": frozenset({"label"}),
}
LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")
_PBKDF2_ITERATIONS = 200_000


class AuthConfigError(ValueError):
    """A user entry is malformed, or the server is exposed without any users configured."""


class ExposureError(AuthConfigError):
    """The server would listen beyond this machine with nobody to sign in."""


class PermissionDenied(PermissionError):
    """The signed-in user's role does not allow this action."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, action: str) -> bool:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; one of {ACTIONS}")
        return action in PERMISSIONS.get(self.role, frozenset())

    def require(self, action: str) -> None:
        if not self.can(action):
            raise PermissionDenied(f"{self.name} ({self.role}) may not {action.replace('_', ' ')}")


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: str
    password_hash: str

    def __repr__(self) -> str:  # never print a hash into a log or a page
        return f"UserRecord(name={self.name!r}, role={self.role!r})"


# ---------------------------------------------------------------------------------------------------------------------
# passwords


def hash_password(password: str, *, salt: str | None = None, iterations: int = _PBKDF2_ITERATIONS) -> str:
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("ascii"), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check against ``pbkdf2_sha256$ITER$SALT$HEX``, ``sha256$HEX`` or a bare 64-hex sha256."""
    if stored.startswith("pbkdf2_sha256$"):
        try:
            _, iterations, salt, expected = stored.split("$")
            actual = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("ascii"),
                                         int(iterations)).hex()
        except ValueError:
            return False
    else:
        expected = stored.removeprefix("sha256$")
        actual = hashlib.sha256(password.encode("utf-8")).hexdigest()
    return hmac.compare_digest(actual, expected.lower())


def _check_hash(name: str, value: str) -> str:
    ok = value.startswith("pbkdf2_sha256$") and value.count("$") == 3
    bare = value.removeprefix("sha256$")
    ok = ok or (len(bare) == 64 and all(ch in "0123456789abcdefABCDEF" for ch in bare))
    if not ok:
        raise AuthConfigError(f"user {name!r}: password must be a hash (pbkdf2_sha256$... or sha256 hex), "
                              "never a clear-text password; make one with `python -m rlaif.workbench.auth hash`")
    return value


# ---------------------------------------------------------------------------------------------------------------------
# users from secrets / environment


def parse_user_line(line: str) -> UserRecord:
    """``name:role:hash`` (the hash may contain ``$`` but not ``:``)."""
    parts = line.strip().split(":")
    if len(parts) != 3 or not all(parts):
        raise AuthConfigError(f"user entry must be name:role:hash, got {len(parts)} field(s) "
                              f"(entry starting {line.strip()[:12]!r})")
    name, role, hashed = (p.strip() for p in parts)
    if role not in ROLES:
        raise AuthConfigError(f"user {name!r}: role must be one of {ROLES}, got {role!r}")
    return UserRecord(name, role, _check_hash(name, hashed))


def load_users(secrets_data: Mapping[str, Any] | None = None,
               environ: Mapping[str, str] | None = None) -> dict[str, UserRecord]:
    """Users from ``[auth]`` in Streamlit secrets, else from ``RLAIF_USERS``; empty means single-user local mode.

    secrets.toml accepts ``[auth] users = ["ana:admin:HASH", ...]`` or one table per user
    (``[auth.users.ana] role = "admin"  password_hash = "HASH"``).
    """
    environ = os.environ if environ is None else environ
    records: list[UserRecord] = []
    auth = (secrets_data or {}).get("auth") or {}
    raw = auth.get("users") if isinstance(auth, Mapping) else None
    if isinstance(raw, Mapping):
        for name, entry in raw.items():
            if not isinstance(entry, Mapping):
                raise AuthConfigError(f"secrets auth.users.{name}: must be a table with role and password_hash")
            role = str(entry.get("role", ""))
            if role not in ROLES:
                raise AuthConfigError(f"user {name!r}: role must be one of {ROLES}, got {role!r}")
            records.append(UserRecord(str(name), role, _check_hash(str(name), str(entry.get("password_hash", "")))))
    elif isinstance(raw, (list, tuple)):
        records.extend(parse_user_line(str(line)) for line in raw)
    elif raw is not None:
        raise AuthConfigError("secrets auth.users: must be a list of name:role:hash or a table per user")
    if not records:
        text = environ.get("RLAIF_USERS", "")
        records.extend(parse_user_line(line) for line in text.replace("\n", ",").split(",") if line.strip())
    return {r.name: r for r in records}


def sign_in(users: Mapping[str, UserRecord], name: str, password: str) -> User | None:
    """The user when ``password`` matches, else None (the same work is done for an unknown name)."""
    record = users.get(name.strip())
    stored = record.password_hash if record else hash_password("", salt="unknown-user")
    ok = verify_password(password, stored)
    return User(record.name, record.role) if (record and ok) else None


def is_local_address(address: str | None) -> bool:
    """True when the server listens on loopback only ("" or 0.0.0.0 means every interface)."""
    return (address or "").strip() in LOCAL_ADDRESSES


def check_exposure(users: Mapping[str, UserRecord], server_address: str | None) -> None:
    """Refuse to serve beyond this machine with nobody to sign in: that would hand admin rights to the network."""
    if not users and not is_local_address(server_address):
        raise ExposureError(
            f"the server listens on {server_address or 'all interfaces'!r} but no users are configured; "
            "set RLAIF_USERS or [auth] in .streamlit/secrets.toml, or bind 127.0.0.1")


def secrets_files(cwd: Path | None = None) -> list[Path]:
    """Where Streamlit reads secrets by default, in override order: the user's, then the working directory's."""
    return [Path.home() / ".streamlit" / "secrets.toml", (cwd or Path.cwd()) / ".streamlit" / "secrets.toml"]


def read_secrets(paths: list[Path]) -> dict[str, Any]:
    """The secrets a Streamlit server started here would see (later files override earlier ones, per top-level
    key, as Streamlit merges them), for checks made before the server runs."""
    merged: dict[str, Any] = {}
    for path in paths:
        if path.is_file():
            try:
                merged.update(tomllib.loads(path.read_text(encoding="utf-8")))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                raise AuthConfigError(f"{path}: not valid TOML: {err}") from None
    return merged


def check_serving(server_address: str | None, *, cwd: Path | None = None,
                  environ: Mapping[str, str] | None = None) -> dict[str, UserRecord]:
    """Before a server starts on ``server_address``: its users (same sources as the app: secrets files, then
    ``RLAIF_USERS``), raising AuthConfigError when they are malformed or ExposureError when nobody could sign in."""
    users = load_users(read_secrets(secrets_files(cwd)), environ)
    check_exposure(users, server_address)
    return users


# ---------------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``hash NAME ROLE``: prompt for a password, print the user line (``python -m rlaif.workbench.auth``)."""
    import getpass

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "hash" or args[2] not in ROLES:
        print(f"usage: python -m rlaif.workbench.auth hash NAME {{{'|'.join(ROLES)}}}", file=sys.stderr)
        return 2
    password = getpass.getpass(f"password for {args[1]}: ")
    print(f"{args[1]}:{args[2]}:{hash_password(password)}")
    return 0
