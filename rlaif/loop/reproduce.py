"""Reproduce an iteration from its manifest and say, field by field, whether the result matches.

A manifest is enough to re-run its iteration: the config (and its hash), the content ids of the prompt sets and the
rubric, the parent model's hash, the seeds; the judge's verdicts come back from the judge cache. Inputs are checked
first and a mismatch is refused with a message naming what differs — re-running on other inputs would "reproduce"
something else. Then the iteration runs again (as a new run in the store) and its outputs are compared.

    report = reproduce_manifest("runs/run-…/manifests/iteration-02-….json", store)
    print(report.render()); report.matches
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif.config import ConfigError, config_dict_hash, config_from_dict
from rlaif.datasets import DatasetError, load_prompts, records_from_store
from rlaif.loop.pipeline import RLAIFPipeline
from rlaif.loop.project import policy_path
from rlaif.manifest import manifest_id_of, verify_manifest
from rlaif.policy import model_hash
from store.content_hash import content_hash

COMPARED = ("dataset_hash", "pairs.kept", "pairs.dropped", "model_hash", "train_steps", "judge_calls",
            "gate.decision", "gate.value")


@dataclass(frozen=True)
class FieldCheck:
    field: str
    expected: Any
    actual: Any

    @property
    def matches(self) -> bool:
        if isinstance(self.expected, float) and isinstance(self.actual, float):
            return abs(self.expected - self.actual) <= 1e-9
        return self.expected == self.actual


@dataclass
class ReproduceReport:
    manifest_id: str
    refused: list[str] = field(default_factory=list)  # input problems: nothing was re-run
    checks: list[FieldCheck] = field(default_factory=list)
    reproduction_run_id: str | None = None

    @property
    def matches(self) -> bool:
        return not self.refused and bool(self.checks) and all(c.matches for c in self.checks)

    @property
    def mismatches(self) -> list[FieldCheck]:
        return [c for c in self.checks if not c.matches]

    def render(self) -> str:
        lines = [f"manifest {self.manifest_id}"]
        if self.refused:
            lines.append("REFUSED: the inputs do not match the manifest, nothing was re-run")
            lines.extend(f"  - {problem}" for problem in self.refused)
            return "\n".join(lines)
        for c in self.checks:
            lines.append(f"  {'match   ' if c.matches else 'MISMATCH'} {c.field}: manifest {c.expected!r}"
                         + ("" if c.matches else f", reproduced {c.actual!r}"))
        verdict = "MATCH" if self.matches else f"MISMATCH in {len(self.mismatches)} field(s)"
        lines.append(f"{verdict} (reproduction run {self.reproduction_run_id})")
        return "\n".join(lines)


def _get(body: dict[str, Any], dotted: str) -> Any:
    value: Any = body
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: value}


def _tampered_fields(body: dict[str, Any], stored: dict[str, Any] | None) -> list[str]:
    if stored is None:
        return ["the manifest's content no longer matches its manifest_id (it was edited), and the store has no "
                "copy to compare with"]
    here, there = _flat("", body), _flat("", stored)
    fields = sorted(k for k in set(here) | set(there)
                    if here.get(k) != there.get(k) and k.split(".")[0] not in ("created_at", "config_base_dir"))
    return [f"manifest field {f!r} was changed: stored {there.get(f)!r}, file {here.get(f)!r}" for f in fields]


def check_inputs(body: dict[str, Any], store) -> tuple[list[str], Any, str | None]:
    """(problems, config, parent model path). Every input the iteration consumed must still hash as recorded."""
    problems: list[str] = []
    try:
        cfg = config_from_dict(body["config"], base_dir=body.get("config_base_dir") or ".", source="manifest config")
    except (ConfigError, KeyError) as err:
        return [f"config: {err}"], None, None
    recorded = config_dict_hash(body["config"])  # the dict as recorded: fields added since then are not in it
    if recorded != body.get("config_hash"):
        problems.append(f"config_hash: the manifest's config hashes to {recorded[:16]}…, "
                        f"the manifest records {str(body.get('config_hash'))[:16]}…")
    for role in ("train", "eval"):
        dataset_id = body.get(f"{role}_dataset_id")
        rows = store.datasets.prompts(dataset_id) if dataset_id else []
        if not rows:
            problems.append(f"{role}_dataset_id: prompt set {dataset_id} is not in this store")
            continue
        records = [p.to_dict() for p in records_from_store(rows)]
        if content_hash(records) != dataset_id:
            problems.append(f"{role}_dataset_id: the stored prompt set no longer hashes to {dataset_id[:16]}…")
        source = Path(cfg.resolve(getattr(cfg.data, role)) or "")
        if source.is_file():
            try:
                on_disk = [p.to_dict() for p in load_prompts(source)]
                limit = getattr(cfg.data, f"max_{role}_prompts")
                on_disk = on_disk[:limit] if limit else on_disk
                if content_hash(on_disk) != dataset_id:
                    problems.append(f"{role} dataset: file {source} now hashes to {content_hash(on_disk)[:16]}…, "
                                    f"the manifest records {dataset_id[:16]}…")
            except DatasetError as err:
                problems.append(f"{role} dataset: {err}")
    rubric = store.rubrics.get(body.get("rubric_version"))
    if rubric is None:
        problems.append(f"rubric_version: rubric {body.get('rubric_version')} is not in this store")
    elif content_hash(rubric["body"]) != body.get("rubric_version"):
        problems.append("rubric_version: the stored rubric no longer hashes to its version")
    parent_path: str | None
    if body["iteration"] == 0:
        parent_path, expected = str(policy_path(cfg)), body.get("base_model_hash")
    else:
        parent = store.manifests.get(body["parents"][-1]) if body.get("parents") else None
        parent_path = parent["body"]["model_path"] if parent else None
        expected = body.get("parent_model_hash")
    if parent_path is None or not Path(parent_path).exists():
        problems.append(f"parent model: checkpoint {parent_path} is missing")
    else:
        actual = model_hash(parent_path)
        if actual != expected:
            problems.append(f"parent model: {parent_path} hashes to {actual[:16]}…, the manifest records "
                            f"{str(expected)[:16]}…")
    return problems, cfg, parent_path


def reproduce_manifest(path: str | Path, store, *, output_dir: str | Path | None = None) -> ReproduceReport:
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable manifest file ({err}); pass runs/<run>/manifests/<file>.json") \
            from None
    if not isinstance(body, dict):
        raise ValueError(f"{path}: a manifest is a JSON object, got {type(body).__name__}")
    report = ReproduceReport(manifest_id=str(body.get("manifest_id")))
    if not verify_manifest(body):
        stored = store.manifests.get(body.get("manifest_id"))
        report.refused = _tampered_fields(body, stored["body"] if stored else None) or [
            f"manifest_id {body.get('manifest_id')} does not match the content (expected {manifest_id_of(body)})"]
        return report
    problems, cfg, parent_path = check_inputs(body, store)
    if problems:
        report.refused = problems
        return report
    if output_dir is not None:
        cfg = dataclasses.replace(cfg, output_dir=str(output_dir))
    pipeline = RLAIFPipeline(cfg, store=store)
    result = pipeline.replay(body, parent_path)
    report.reproduction_run_id = pipeline.run_id
    redo = result.manifest
    report.checks = [FieldCheck(f, _get(body, f), _get(redo, f)) for f in COMPARED]
    for key, value in sorted(_flat("metrics", body.get("metrics", {})).items()):
        report.checks.append(FieldCheck(key, value, _get(redo, key)))
    return report
