"""Approved pair sets, exported for TRL: ``prompt/chosen/rejected`` plus the provenance of every row.

Why approve before export: a pair set that leaves the workbench trains someone's model, so a person signs off on an
exact selection (run, iteration, filters) and the approval records who, when, how many pairs and a digest of their
ids. Export re-selects the pairs and refuses if they no longer match the approval, so the file is provably the set
that was approved. Only kept pairs are ever exported; dropped ones stay in the store with their reasons. A run in
chat mode (``policy.prompt_format: chat``) is exported in TRL's conversational format (``prompt`` a message list with
the system message, ``chosen``/``rejected`` one assistant message each), so TRL applies the model's chat template.

Per-pair review: the approver may reject single pairs of the filtered set; the approval records their ids and they
are left out of its count, digest and files. Approving the same run, iteration and filters a second time is refused
(``DuplicateApproval``, naming the earlier approval) unless the caller confirms it, so a double click or a second
reviewer does not silently create two sign-offs of one selection.

    approval = approve(store, ExportFilters(run_id="run-1", iteration=2), approved_by="ana", rejected=["pair-7"])
    paths = export_approved(store, approval["approval_id"], "exports/")   # {"jsonl": ..., "parquet": ...}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rlaif.policy import Rendering
from store import PairFilter

TRL_COLUMNS = ("prompt", "chosen", "rejected")
PROVENANCE_COLUMNS = ("source", "rubric_version", "teacher_model", "judge_confidence", "run_id", "iteration",
                      "pair_id", "prompt_id")
# store column -> exported column (TRL ignores extra columns; the names say what they are to a reader of the file)
_RENAMES = {"judge_id": "teacher_model", "confidence": "judge_confidence"}


class ExportMismatch(RuntimeError):
    """The pairs a filter selects today differ from those that were approved."""


class DuplicateApproval(ValueError):
    """The same run, iteration and filters were approved before; ``earlier`` holds those approvals, newest first."""

    def __init__(self, earlier: list[dict[str, Any]]):
        last = earlier[0]
        super().__init__(f"this selection was approved already by {last['approved_by']} at "
                         f"{str(last['approved_at'])[:19]} (approval {last['approval_id']}, {last['n_pairs']} pairs); "
                         "confirm to approve it again")
        self.earlier = earlier


@dataclass(frozen=True)
class ExportFilters:
    """Which kept pairs: one run, optionally one iteration, a text search and a minimum judge confidence."""

    run_id: str
    iteration: int | None = None
    search: str | None = None
    min_confidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExportFilters":
        return cls(**{k: data.get(k) for k in ("run_id", "iteration", "search", "min_confidence")})


def select_pairs(store, filters: ExportFilters) -> pa.Table:
    """The kept pairs the filters select, ordered by pair_id, in the export's column layout."""
    table = store.pairs.table(PairFilter(run_id=filters.run_id, iteration=filters.iteration, kept=True,
                                         search=filters.search or None))
    if filters.min_confidence is not None and table.num_rows:
        confidence = pc.fill_null(table["confidence"], 0.0)
        table = table.filter(pc.greater_equal(confidence, filters.min_confidence))
    table = table.rename_columns([_RENAMES.get(name, name) for name in table.column_names])
    return table.select(list(TRL_COLUMNS) + list(PROVENANCE_COLUMNS))


def pairs_digest(table: pa.Table) -> str:
    """sha256 over the selected pair ids in order: the identity of an approved set."""
    h = hashlib.sha256()
    for pair_id in table["pair_id"].to_pylist():
        h.update(pair_id.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def without_rejected(table: pa.Table, rejected: Iterable[str] | None) -> pa.Table:
    """The selection minus the pairs a reviewer rejected one by one (order kept)."""
    rejected = list(rejected or [])
    if not rejected or table.num_rows == 0:
        return table
    return table.filter(pc.invert(pc.is_in(table["pair_id"], value_set=pa.array(rejected, pa.string()))))


def earlier_approvals(store, filters: ExportFilters) -> list[dict[str, Any]]:
    """Approvals of exactly this selection (run, iteration, filters), newest first: approving again duplicates."""
    return store.approvals.same_selection(filters.run_id, filters.iteration, filters.to_dict())


def approve(store, filters: ExportFilters, approved_by: str, rejected: Iterable[str] = (),
            confirm_duplicate: bool = False) -> dict[str, Any]:
    """Record that ``approved_by`` signed off on the selection as it is now, less the ``rejected`` pair ids;
    returns the approval row. Raises DuplicateApproval when this selection was approved before, unless
    ``confirm_duplicate``; ValueError when a rejected id is not in the selection or nothing is left."""
    table = select_pairs(store, filters)
    if table.num_rows == 0:
        raise ValueError("nothing to approve: the filters select no kept pairs")
    rejected = sorted(set(rejected))
    unknown = set(rejected) - set(table["pair_id"].to_pylist())
    if unknown:
        raise ValueError(f"rejected pairs {sorted(unknown)[:3]} are not in the selection; reload the pairs")
    kept = without_rejected(table, rejected)
    if kept.num_rows == 0:
        raise ValueError("nothing to approve: every selected pair was rejected")
    earlier = earlier_approvals(store, filters)
    if earlier and not confirm_duplicate:
        raise DuplicateApproval(earlier)
    approval_id = store.approvals.add(run_id=filters.run_id, iteration=filters.iteration, filters=filters.to_dict(),
                                      approved_by=approved_by, n_pairs=kept.num_rows,
                                      pairs_digest=pairs_digest(kept), rejected_pairs=rejected)
    return store.approvals.get(approval_id)


def approved_table(store, approval_id: str) -> tuple[dict[str, Any], pa.Table]:
    approval = store.approvals.get(approval_id)
    if approval is None:
        raise LookupError(f"no approval {approval_id!r}")
    table = without_rejected(select_pairs(store, ExportFilters.from_dict(approval["filters"])),
                             approval.get("rejected_pairs"))
    if table.num_rows != approval["n_pairs"] or pairs_digest(table) != approval["pairs_digest"]:
        raise ExportMismatch(f"approval {approval_id} covered {approval['n_pairs']} pairs; the same filters now "
                             f"select {table.num_rows} different pairs; approve the selection again")
    return approval, table


def run_rendering(store, run_id: str) -> Rendering:
    """The run's rendering settings as its stored config names them (no tokenizer: enough for TRL rows)."""
    run = store.runs.get(run_id) or {}
    config = run.get("config") or {}
    policy = (json.loads(config) if isinstance(config, str) else config).get("policy") or {}
    return Rendering(policy.get("prompt_template", "{prompt}"), "", policy.get("prompt_format") == "chat",
                     policy.get("system_prompt"))


def as_trl_rows(table: pa.Table, rendering: Rendering) -> pa.Table:
    """prompt/chosen/rejected as TRL reads them: unchanged strings (plain), message lists (chat)."""
    if not rendering.chat or table.num_rows == 0:
        return table
    rows = [rendering.trl_row(dict(zip(TRL_COLUMNS, values)))
            for values in zip(*(table[name].to_pylist() for name in TRL_COLUMNS))]
    for name in TRL_COLUMNS:
        table = table.set_column(table.column_names.index(name), name, pa.array([r[name] for r in rows]))
    return table


def _with_approval(table: pa.Table, approval: dict[str, Any]) -> pa.Table:
    n = table.num_rows
    return (table.append_column("approval_id", pa.array([approval["approval_id"]] * n, pa.string()))
                 .append_column("approved_by", pa.array([approval["approved_by"]] * n, pa.string())))


def export_approved(store, approval_id: str, out_dir: str | Path) -> dict[str, Path]:
    """Write the approved set to ``<out_dir>/<run>-<approval>.jsonl`` and ``.parquet``; returns both paths."""
    approval, table = approved_table(store, approval_id)
    table = _with_approval(as_trl_rows(table, run_rendering(store, approval["run_id"])), approval)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{approval['run_id']}-{approval_id[16:24] if len(approval_id) == 32 else approval_id[:12]}"
    paths = {"jsonl": out_dir / f"{stem}.jsonl", "parquet": out_dir / f"{stem}.parquet"}
    paths["jsonl"].write_bytes(to_jsonl_bytes(table))
    pq.write_table(table, paths["parquet"])
    return paths


def to_jsonl_bytes(table: pa.Table) -> bytes:
    """One JSON object per line, keys in column order (what ``datasets.load_dataset("json")`` reads)."""
    names = table.column_names
    lines = (json.dumps(dict(zip(names, row)), ensure_ascii=False)
             for row in zip(*(table[name].to_pylist() for name in names)))
    return "".join(line + "\n" for line in lines).encode("utf-8")


def to_parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def approved_bytes(store, approval_id: str) -> dict[str, bytes]:
    """The approved set as JSONL and Parquet bytes, for download buttons."""
    approval, table = approved_table(store, approval_id)
    table = _with_approval(as_trl_rows(table, run_rendering(store, approval["run_id"])), approval)
    return {"jsonl": to_jsonl_bytes(table), "parquet": to_parquet_bytes(table)}
