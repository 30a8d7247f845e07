"""The store registry: one open ``Store`` per database file for the whole server process.

Why a module-level registry: Streamlit reruns a page script on every click and starts a thread per browser session,
and DuckDB lets one process at a time have a database file open. So every session and the background job worker
share ONE ``Store`` per file (threads share its connection through cursors), made here on first use; making it also
marks the jobs of dead server processes ``interrupted``, which is how a restart shows up on the Runs page. The Store
opens the file only while it is being used (see ``store.db``), so a CLI command can use the same file while the
server is up.

    store = open_store(default_store_path())
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from store import Store

_STORES: dict[str, Store] = {}
_STORES_LOCK = threading.Lock()


def default_store_path() -> str:
    """``RLAIF_STORE`` or ``rlaif.duckdb`` (the CLI's default too), read when asked so tests can set it."""
    return os.environ.get("RLAIF_STORE", "rlaif.duckdb")


def store_exists(path: str | Path) -> bool:
    """Whether ``path`` names a database that is already there (":memory:" always is): the sidebar asks before a
    typed path that is not makes a new, empty store, since a typo would otherwise silently open an empty one."""
    return str(path) == ":memory:" or Path(path).expanduser().is_file()


def needs_confirmation(path: str | Path) -> bool:
    """A path the user typed that would create a new store. The default store (``RLAIF_STORE``, or rlaif.duckdb) is
    created silently on a first start, as the CLI does: that is the path the server was started with."""
    same_as_default = Path(str(path)).expanduser().resolve() == Path(default_store_path()).expanduser().resolve()
    return not same_as_default and not store_exists(path)


def open_store(path: str | Path) -> Store:
    """The process-wide Store for ``path`` (opened, migrated and cleaned of dead jobs on first use)."""
    key = str(path) if str(path) == ":memory:" else str(Path(path).expanduser().resolve())
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = Store(path)
            store.jobs.mark_interrupted_on_startup()
            _STORES[key] = store
        return store


def close_stores() -> None:
    """Close every shared store (tests, and a server shutting down)."""
    with _STORES_LOCK:
        for store in _STORES.values():
            store.close()
        _STORES.clear()
