"""The evidence behind a pair, a verdict or an iteration, shaped for the Browse and Label pages.

Why here and not in the pages: what decided a pair (the judge's matches between its two candidates, with rationale
and per-criterion assessment, and the verifier's checks of both) is joined from three tables and re-oriented from the
judge's A/B to chosen/rejected; a manifest becomes a card of readable facts. That is plain Python tests can call,
and the pages stay views.

    ev = pair_evidence(store, pair)      # ev.matches[0].winner == "chosen"; ev.checks["chosen"]["sql_executes"]
    card = manifest_card(body)           # card.facts, card.metrics
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any

from rlaif.rubric import DEFAULT_RUBRIC, RubricError, load_rubric
from rlaif.workbench.fmt import fmt_id, fmt_num, fmt_seconds
from rlaif.workbench.projects import run_config

SIDES = ("chosen", "rejected")


# ---------------------------------------------------------------------------------------------------------------------
# A pair and the verdicts that decided it


@dataclass(frozen=True)
class Match:
    """One judge call between the pair's two candidates, oriented as chosen/rejected."""

    judgement_id: str
    judge_id: str
    winner: str  # chosen | rejected | tie | invalid
    first_shown: str  # which of the pair the judge saw as A: chosen | rejected
    confidence: float | None
    rationale: str
    criteria: list[dict[str, str]]  # one row per criterion: criterion, chosen, rejected
    raw_reply: str | None


@dataclass
class PairEvidence:
    prompt: str
    texts: dict[str, str | None]
    candidates: dict[str, dict[str, Any] | None]  # chosen/rejected -> the candidate row (None when not stored)
    checks: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # chosen/rejected -> check rows
    matches: list[Match] = field(default_factory=list)
    prompt_judgements: int = 0  # every verdict on this prompt in this iteration (the tournament, not just this pair)


def _assessment(value: Any) -> str:
    """A per-criterion assessment as a word: a verifier's pass/fail, or an LLM judge's share of the point."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "✓ pass" if value else "✗ fail"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "better" if x > 0.5 else "worse" if x < 0.5 else "equal"


def criteria_rows(criteria: dict[str, Any] | None, a_side: str, b_side: str) -> list[dict[str, str]]:
    """The judge's per-criterion assessment ({name: {"a": .., "b": ..}}) as rows with one column per pair side."""
    rows = []
    for name, value in (criteria or {}).items():
        value = value if isinstance(value, dict) else {"a": value, "b": None}
        row = {"criterion": str(name), a_side: _assessment(value.get("a")), b_side: _assessment(value.get("b"))}
        rows.append({"criterion": row["criterion"], "chosen": row.get("chosen", "—"),
                     "rejected": row.get("rejected", "—")})
    return rows


def orient(judgement: dict[str, Any], chosen_id: str | None) -> Match:
    """A stored verdict (winner a/b in the judge's order) as chosen/rejected for the pair whose chosen is given."""
    a_is_chosen = judgement["candidate_a"] == chosen_id
    a_side, b_side = ("chosen", "rejected") if a_is_chosen else ("rejected", "chosen")
    winner = {"a": a_side, "b": b_side}.get(judgement["winner"], judgement["winner"])
    return Match(judgement["judgement_id"], judgement["judge_id"], winner, a_side, judgement.get("confidence"),
                 judgement.get("rationale") or "", criteria_rows(judgement.get("criteria"), a_side, b_side),
                 judgement.get("raw_reply"))


def check_rows(verification: dict[str, Any] | None) -> list[dict[str, str]]:
    """The verifier's result for one candidate as rows: each check pass/fail, then its error if it had one."""
    if not verification:
        return []
    rows = [{"check": str(name), "result": _assessment(bool(ok)) if ok is not None else "—"}
            for name, ok in (verification.get("criteria") or {}).items()]
    if verification.get("error"):
        rows.append({"check": f"error ({verification.get('error_kind') or 'error'})",
                     "result": str(verification["error"])})
    return rows


def checks_summary(rows: list[dict[str, str]]) -> str:
    passed = sum(r["result"] == "✓ pass" for r in rows)
    counted = sum(r["result"] in ("✓ pass", "✗ fail") for r in rows)
    return f"{passed} of {counted} checks pass" if counted else "no verifier checks stored"


def pair_evidence(store, pair: dict[str, Any]) -> PairEvidence:
    """Everything that decided ``pair`` (a ``store.pairs`` row): its texts, both candidates' verifier checks and the
    judge's matches between exactly these two candidates (both orders, when the judge was asked both)."""
    ids = {"chosen": pair.get("chosen_candidate"), "rejected": pair.get("rejected_candidate")}
    stored = store.candidates.get_many([i for i in ids.values() if i])
    candidates = {side: stored.get(cid) if cid else None for side, cid in ids.items()}
    ev = PairEvidence(prompt=pair.get("prompt") or "", texts={"chosen": pair.get("chosen"),
                                                              "rejected": pair.get("rejected")},
                      candidates=candidates)
    ev.checks = {side: check_rows((row or {}).get("verification")) for side, row in candidates.items()}
    run_id, iteration, prompt_id = pair.get("run_id"), pair.get("iteration"), pair.get("prompt_id")
    if run_id and prompt_id is not None and iteration is not None:
        if all(ids.values()):
            ev.matches = [orient(j, ids["chosen"]) for j in
                          store.judgements.between(run_id, iteration, prompt_id, list(ids.values()))]
        ev.prompt_judgements = sum(store.judgements.count_by_winner(run_id, iteration, prompt_id).values())
    return ev


# ---------------------------------------------------------------------------------------------------------------------
# Manifests


@dataclass
class ManifestCard:
    title: str
    facts: list[tuple[str, str, str]]  # (label, shown value, full value for hover/copy)
    metrics: list[dict[str, Any]]  # cohort, metric, value, change vs previous, change vs base


def _signed(x: Any) -> str:
    if x is None:
        return ""
    text = fmt_num(x)
    return text if text.startswith("-") or text in ("0", "—") else f"+{text}"


def manifest_card(body: dict[str, Any]) -> ManifestCard:
    """A manifest as a person reads it: kind and iteration, gate, pairs, hashes (12 characters, full on hover),
    judge, seeds, throughput, and each metric with its change."""
    gate = body.get("gate") or {}
    pairs = body.get("pairs") or {}
    dropped = pairs.get("dropped") or {}
    judge = body.get("judge") or {}
    judge_text = judge.get("judge_id", "") if isinstance(judge, dict) else str(judge)
    seeds = body.get("seeds") or {}
    throughput = body.get("throughput") or {}
    facts: list[tuple[str, str, str]] = [
        ("gate", str(gate.get("decision") or "—"),
         f"value {fmt_num(gate.get('value'))}, best {fmt_num(gate.get('best_value'))} at iteration "
         f"{gate.get('best_iteration')}, tolerance {fmt_num(gate.get('tolerance'))}" if gate else ""),
        ("pairs kept", fmt_num(pairs.get("kept")), ""),
        ("pairs dropped", fmt_num(sum(dropped.values())) if isinstance(dropped, dict) else fmt_num(dropped),
         ", ".join(f"{k}: {v}" for k, v in dropped.items()) if isinstance(dropped, dict) else ""),
        ("model", fmt_id(body.get("model_hash")) or "—", str(body.get("model_hash") or "")),
        ("dataset", fmt_id(body.get("dataset_hash")) or "—", str(body.get("dataset_hash") or "")),
        ("rubric", fmt_id(body.get("rubric_version")) or "—", str(body.get("rubric_version") or "")),
        ("judge", judge_text or "—", ", ".join(f"{k}={v}" for k, v in judge.items()) if isinstance(judge, dict)
         else judge_text),
        ("judge calls", fmt_num(body.get("judge_calls")), ""),
        ("seeds", ", ".join(f"{k} {v}" for k, v in seeds.items() if not isinstance(v, str) or len(v) < 16) or "—",
         ", ".join(f"{k}={v}" for k, v in seeds.items())),
        ("throughput", " · ".join(f"{stage} {fmt_num(t.get('tokens_per_s'))} tok/s" for stage, t in throughput.items()
                                  if isinstance(t, dict)) or "—",
         " · ".join(f"{stage}: {t.get('new_tokens')} tokens in {fmt_seconds(t.get('seconds'))}"
                    for stage, t in throughput.items() if isinstance(t, dict))),
        ("train loss", fmt_num(body.get("train_loss")), f"{body.get('train_steps') or 0} steps"),
        ("manifest", fmt_id(body.get("manifest_id")), str(body.get("manifest_id") or "")),
    ]
    deltas = body.get("deltas") or {}
    metrics = []
    for cohort, values in (body.get("metrics") or {}).items():
        for metric, value in (values or {}).items():
            metrics.append({
                "cohort": cohort, "metric": metric, "value": fmt_num(value),
                "vs previous": _signed(((deltas.get("vs_previous") or {}).get(cohort) or {}).get(metric)),
                "vs base": _signed(((deltas.get("vs_base") or {}).get(cohort) or {}).get(metric))})
    title = f"{body.get('kind') or 'manifest'} · iteration {body.get('iteration')}"
    return ManifestCard(title, facts, metrics)


def manifest_file(body: dict[str, Any]) -> Path | None:
    """Where the run wrote this manifest's file (``<output_dir>/<run>/manifests/``), when that is known."""
    config = body.get("config") or {}
    if not config.get("output_dir") or body.get("iteration") is None:
        return None
    out = Path(config["output_dir"])
    if not out.is_absolute() and body.get("config_base_dir"):
        candidate = Path(body["config_base_dir"]) / out
        out = candidate if candidate.exists() else out
    name = f"iteration-{int(body['iteration']):02d}-{body['manifest_id']}.json"  # rlaif.manifest.write_manifest_file
    return out / str(body.get("run_id")) / "manifests" / name


def reproduce_command(body: dict[str, Any], store_path: str, downloaded_as: str | None = None) -> str:
    """The exact CLI line that re-runs this iteration from its manifest and compares (``rlaif reproduce``): the run's
    own manifest file when it still exists, else the file the page's download button saves."""
    path = manifest_file(body)
    target = str(path) if path is not None and path.is_file() else (downloaded_as or manifest_download_name(body))
    return f"rlaif reproduce {shlex.quote(target)} --store {shlex.quote(str(store_path))}"


def manifest_download_name(body: dict[str, Any]) -> str:
    return f"{body.get('run_id')}-iteration-{int(body.get('iteration') or 0):02d}-{body.get('manifest_id')}.json"


# ---------------------------------------------------------------------------------------------------------------------
# Held-out outputs and guidelines


def held_out_beside_base(store, run_id: str, prompt_id: str) -> list[dict[str, Any]]:
    """What each iteration answered to one held-out prompt, the base model (iteration 0) first, with its checks."""
    rows = store.eval_outputs.for_prompt(run_id, prompt_id)
    out = []
    for iteration, row in sorted(rows.items()):
        checks = row.get("checks") or {}
        out.append({"iteration": iteration, "output": row.get("output") or "", "cohort": row.get("cohort"),
                    "tokens": row.get("n_tokens"),
                    "checks": check_rows(checks if "criteria" in checks else {"criteria": checks})})
    return out


def guidelines_html(rubric) -> str:
    """A rubric's criteria (what each asks, whether it is a must, its weight) and principles as one compact, escaped
    HTML block: the annotator's guidelines beside the pair, small enough that the label buttons stay on screen."""
    parts = [f'<div class="rlaif-guidelines" style="font-size:0.8rem;line-height:1.35">'
             f'<div style="font-weight:600;font-size:0.9rem;margin-bottom:0.3rem">Guidelines · {escape(rubric.name)}'
             '</div>']
    for c in rubric.criteria:
        parts.append(f'<div style="margin-bottom:0.45rem"><b>{escape(c.name)}</b> <span style="opacity:0.65">'
                     f'{"must pass" if c.hard else "nice to have"} · weight {fmt_num(c.weight)}</span><br>'
                     f"{escape(c.description)}</div>")
    if rubric.principles:
        parts.append('<ul style="margin:0.2rem 0 0 1rem;padding:0">'
                     + "".join(f'<li style="font-size:0.8rem;margin:0">{escape(p)}</li>' for p in rubric.principles)
                     + "</ul>")
    return "".join(parts) + "</div>"


def project_rubric(project_path):
    """The project's rubric (the file its config names, else the default), or None when the config is unreadable.
    Parsed once per file version (keyed on modification times): the Label page asks on every rerun."""
    try:
        path = _rubric_path(str(project_path), Path(project_path).stat().st_mtime)
        return _rubric_file(str(path), path.stat().st_mtime) if path is not None else DEFAULT_RUBRIC
    except (OSError, ValueError, RubricError):
        return None


@lru_cache(maxsize=32)
def _rubric_path(config_path: str, _mtime: float) -> Path | None:
    cfg = run_config(config_path)
    path = cfg.resolve(cfg.rubric) if cfg.rubric else None
    return path if path is not None and path.is_file() else None


@lru_cache(maxsize=32)
def _rubric_file(path: str, _mtime: float):
    return load_rubric(path)
