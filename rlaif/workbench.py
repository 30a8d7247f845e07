"""What the workbench's pages share across sessions, without Streamlit: open stores, projects, run configs.

Why a module-level registry: Streamlit reruns a page script on every click and starts a thread per browser session,
but DuckDB lets one process hold a database file open for writing. So every session and the background job worker
share ONE ``Store`` per file (threads use cursors), opened here on first use; opening also marks the jobs of a
previous server process ``interrupted``, which is how a restart shows up on the Runs page.

    store = open_store("rlaif.duckdb"); cfg = run_config(project_path, {"loop.iterations": 1})
"""

from __future__ import annotations

import copy
import getpass
import os
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from rlaif.auth import User
from rlaif.config import RunConfig, config_from_dict, describe_fields
from rlaif.judges import Judge, make_judge
from store import Store

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO_ROOT / "sample_data"
DEFAULT_SAMPLE = "harbor_sql"  # the embedded default project: the text-to-SQL sample

_STORES: dict[str, Store] = {}
_STORES_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------------------------------------
# stores


def default_store_path() -> str:
    """``RLAIF_STORE`` or ``rlaif.duckdb`` (the CLI's default too), read when asked so tests can set it."""
    return os.environ.get("RLAIF_STORE", "rlaif.duckdb")


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


# ---------------------------------------------------------------------------------------------------------------------
# projects: a project is a loop config (YAML) whose relative paths resolve against its folder


def discover_projects() -> dict[str, Path]:
    """Loop configs by display name: any in ``RLAIF_PROJECTS`` (os.pathsep-separated), then the samples (harbor_sql
    first); the first one is the sidebar's default."""
    found: dict[str, Path] = {}
    for raw in filter(None, os.environ.get("RLAIF_PROJECTS", "").split(os.pathsep)):
        path = Path(raw).expanduser()
        if path.is_file():  # the user's own projects come first: the first one is the default
            found[f"{path.parent.name}/{path.stem}"] = path.resolve()
    samples = sorted(SAMPLE_DATA.glob("*/loop.yaml"), key=lambda p: (p.parent.name != DEFAULT_SAMPLE, p.parent.name))
    found.update({p.parent.name: p for p in samples})
    return found


def project_dict(config_path: str | Path) -> dict[str, Any]:
    """The raw YAML mapping of a project's loop config."""
    return yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value


def get_dotted(data: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def run_config(config_path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The project's config with ``overrides`` (dotted field paths) applied and validated (ConfigError names the field).

    A ``None`` override leaves the file's value alone, so a form can pass every field it shows.
    """
    data = copy.deepcopy(project_dict(config_path))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(data, dotted, value)
    return config_from_dict(data, base_dir=Path(config_path).resolve().parent, source=str(config_path))


def project_anchor_files(config_path: str | Path) -> list[Path]:
    """Anchor files beside a project's config (``*anchor*.jsonl|csv|parquet``), for the import button."""
    folder = Path(config_path).resolve().parent
    return sorted(p for ext in ("jsonl", "csv", "parquet") for p in folder.glob(f"*anchor*.{ext}"))


def kappa_field(cfg: RunConfig) -> tuple[str, float] | None:
    """(dotted path, value) of the config's calibration-gate kappa threshold, when the config has one."""
    for path, _, _ in describe_fields():
        if path == "calibration.threshold" or "kappa" in path.rsplit(".", 1)[-1]:
            value: Any = cfg
            for part in path.split("."):
                value = getattr(value, part)
            return (path, value) if isinstance(value, (int, float)) else None
    return None


def field_help() -> dict[str, str]:
    """Help text per dotted config field, for form tooltips."""
    return {path: text for path, text, _ in describe_fields()}


@contextmanager
def project_judge(cfg: RunConfig, name: str | None = None, options: dict[str, Any] | None = None,
                  store: Store | None = None) -> Iterator[Judge]:
    """A judge for the project (its verifier sandbox opened when the config has one), closed on exit.

    ``name``/``options`` default to the config's judge; other options apply only to the config's own judge name.
    """
    with ExitStack() as stack:
        verify = None
        if cfg.verifier.kind == "sql":
            from rlaif.sql_sandbox import SqlSandbox
            from rlaif.sql_verifier import SqlVerifier

            sandbox = stack.enter_context(SqlSandbox(Path(cfg.resolve(cfg.verifier.warehouse)),
                                                     allowed_relations=list(cfg.verifier.allowed_relations),
                                                     timeout_s=cfg.verifier.timeout_s))
            verify = SqlVerifier(sandbox).verify
        name = name or cfg.judge.name
        yield make_judge(name, verify=verify, options=judge_options(cfg, name) if options is None else options,
                         store=store)


@dataclass(frozen=True)
class CostEstimate:
    judge_calls: int
    usd: float | None  # None: the judge's price is unknown
    note: str


def judge_options(cfg: RunConfig, name: str) -> dict[str, Any]:
    """The config's judge options when ``name`` is the config's judge, else none (another judge's defaults)."""
    return dict(cfg.judge.options) if name == cfg.judge.name else {}


def spends_api(name: str, options: dict[str, Any] | None = None) -> bool:
    """Whether a judge spec may cost API money (an annotator may never start one); unknown prices count as spending."""
    try:
        from rlaif.judges.pricing import estimate_spec_cost

        usd, _ = estimate_spec_cost(name, options, 1, 100)
    except Exception:  # a malformed spec: treat it as the expensive case
        return name not in ("verifier", "stub", "biased", "local")
    return usd is None or usd > 0


def estimate_run_cost(cfg: RunConfig, n_train_prompts: int) -> CostEstimate:
    """Judge calls a run makes at most (round-robin over N candidates per prompt, every iteration), and their cost."""
    n = min(n_train_prompts, cfg.data.max_train_prompts or n_train_prompts)
    k = cfg.sampling.candidates_per_prompt
    calls = cfg.loop.iterations * n * k * (k - 1) // 2
    try:
        from rlaif.judges.pricing import estimate_judge_cost

        usd, note = estimate_judge_cost(cfg, calls)
    except Exception as err:  # e.g. a rubric file that does not parse: say so instead of guessing
        return CostEstimate(calls, None, f"no estimate: {err}")
    return CostEstimate(calls, usd, note)


# ---------------------------------------------------------------------------------------------------------------------
# the per-session context app.py hands to every page


@dataclass
class Workbench:
    """What a page needs: the shared store, the chosen project, who is signed in and who is labelling."""

    store_path: str
    store: Store
    project: str
    project_path: Path
    user: User
    labeller: str

    def can(self, action: str) -> bool:
        return self.user.can(action)


def default_labeller() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"
