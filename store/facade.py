"""The one object the engine, CLI and pages use to reach the database.

``Store`` opens (and migrates) one DuckDB database and exposes a small repository per entity, so callers write
``store.pairs.page(...)`` and never SQL. Threads share one Store: every call runs on its own ``conn.cursor()``,
and ``store.transaction()`` groups calls made on the same thread into one all-or-nothing write. A file store is
opened on demand and closed when idle (see ``store.db``), so several processes can share it.

    with Store("runs/workbench.duckdb") as store:
        with store.transaction():
            store.pairs.add_many(pairs)
            store.iterations.finish("r-01", 2, status="completed", ...)
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import duckdb

from store.anchors import AnchorsRepository
from store.approvals import ApprovalsRepository
from store.candidates import CandidatesRepository
from store.datasets import DatasetsRepository
from store.db import Database
from store.eval_outputs import EvalOutputsRepository
from store.evals import EvalsRepository
from store.iterations import IterationsRepository
from store.jobs import JobsRepository
from store.judge_batches import JudgeBatchesRepository
from store.judge_cache import JudgeCacheRepository
from store.judgements import JudgementsRepository
from store.labels import LabelsRepository
from store.manifests import ManifestsRepository
from store.migrate import MIGRATIONS_DIR
from store.pairs import PairsRepository
from store.query import where_clause
from store.rubrics import RubricsRepository
from store.runs import RunsRepository


class Store:
    """Facade over the repositories; ``path`` is ``":memory:"`` or a file (parent folders are created)."""

    def __init__(self, path: str | Path = ":memory:", migrations_dir: str | Path = MIGRATIONS_DIR, **sharing):
        """``sharing``: ``wait_s``, ``linger_s``, ``on_wait`` of ``store.db.Database`` (how a file is shared)."""
        self.db = Database(path, migrations_dir, **sharing)
        self.path = self.db.path
        self.datasets = DatasetsRepository(self.db)
        self.rubrics = RubricsRepository(self.db)
        self.runs = RunsRepository(self.db)
        self.iterations = IterationsRepository(self.db)
        self.candidates = CandidatesRepository(self.db)
        self.judgements = JudgementsRepository(self.db)
        self.pairs = PairsRepository(self.db)
        self.evals = EvalsRepository(self.db)
        self.manifests = ManifestsRepository(self.db)
        self.jobs = JobsRepository(self.db)
        self.judge_cache = JudgeCacheRepository(self.db)
        self.approvals = ApprovalsRepository(self.db)
        self.anchors = AnchorsRepository(self.db)
        self.labels = LabelsRepository(self.db)
        self.eval_outputs = EvalOutputsRepository(self.db)
        self.judge_batches = JudgeBatchesRepository(self.db)

    ITERATION_TABLES = ("candidates", "judgements", "pairs", "evals", "eval_outputs", "iterations")

    def purge_iteration(self, run_id: str, iteration: int) -> None:
        """Delete what an unfinished iteration left behind (in one transaction), so a resume redoes it cleanly.

        Judge verdicts are not lost: they live in the judge cache, which a resumed iteration reads back.
        """
        where, params = where_clause(key={"run_id": run_id, "iteration": iteration})
        with self.transaction() as cur:
            for table in self.ITERATION_TABLES:
                cur.execute(f"DELETE FROM {table} {where}", params)

    @property
    def schema_version(self) -> int:
        return self.db.schema_version

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for ad-hoc reads (e.g. a page's DataFrame); inside ``transaction()`` it is that one."""
        return self.db.cursor()

    def connected(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """Keep a file store open for the block: a burst of reads (a page) pays for one open, not one per call."""
        return self.db.connected()

    def transaction(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """All repository writes inside the block, on this thread, commit together or not at all."""
        return self.db.transaction()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.path!r})"
