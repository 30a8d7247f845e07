"""Projects as the workbench shows them: which loop configs exist, a config with a form's overrides, and the
project's judge, verifier and cost, all through the one project assembly (``rlaif.loop.project``).

    cfg = run_config(project_path, {"loop.iterations": 1}); estimate_run_cost(cfg, 282).judge_calls
"""

from __future__ import annotations

import copy
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from rlaif.anchors.formats.readers import file_type_of
from rlaif.config import RunConfig, config_from_dict, describe_fields
from rlaif.judges import Judge
from rlaif.judges.pricing import JudgeCost
from rlaif.loop.project import Project, RunCost, judge_spec, max_judge_calls
from store import Store

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DATA = REPO_ROOT / "sample_data"
DEFAULT_SAMPLE = "harbor_sql"  # the embedded default project: the text-to-SQL sample


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
    """Files beside a project's config that the anchor importer reads (JSONL, CSV, Parquet, JSON exports of
    annotation tools, gzipped or not), for the import button: those named like anchors first, the project's own
    prompt sets left out."""
    cfg = run_config(config_path)
    prompts = {cfg.resolve(cfg.data.train).resolve(), cfg.resolve(cfg.data.eval).resolve()}
    folder = Path(config_path).resolve().parent
    files = [p for p in folder.iterdir() if p.is_file() and file_type_of(p) and p.resolve() not in prompts]
    return sorted(files, key=lambda p: ("anchor" not in p.name.lower(), p.name))


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
def project_judge(cfg: RunConfig, name: str | None = None, store: Store | None = None) -> Iterator[Judge]:
    """A judge for the project (its verifier opened when the config has one), closed on exit.

    ``name`` defaults to the config's judge; the config's options apply only to the config's own judge names.
    """
    with Project.from_config(cfg).open(store, judge=name) as parts:
        yield parts.judge


def spends_api(cfg: RunConfig, name: str | None = None) -> bool:
    """Whether the project's judge ``name`` may cost API money (an annotator may never start one); a spec that does
    not parse counts as spending, an unknown price too."""
    try:
        return judge_spec(cfg, name).spends_api()
    except ValueError:
        return True


def estimate_run_cost(cfg: RunConfig, n_train_prompts: int) -> RunCost:
    """Judge calls a run makes at most (round-robin over N candidates per prompt, every iteration), and their cost;
    a rubric or judge spec that does not parse gives "no estimate" and the reason instead of an error."""
    try:
        return Project.from_config(cfg).estimate_cost(n_train_prompts)
    except ValueError as err:
        return RunCost(max_judge_calls(cfg, n_train_prompts), JudgeCost(None, [f"no estimate: {err}"]))
