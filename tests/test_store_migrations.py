"""The schema as migrations build it, and the migrator's all-or-nothing and too-new rules."""

import shutil

import duckdb
import pytest

from store import MigrationError, SchemaTooNewError, Store
from store.migrate import MIGRATIONS_DIR, applied_versions, discover_migrations, migrate

EXPECTED_SCHEMA = {
    "schema_migrations": {"version": "INTEGER", "name": "VARCHAR", "applied_at": "TIMESTAMP"},
    "datasets": {"dataset_id": "VARCHAR", "name": "VARCHAR", "kind": "VARCHAR", "source_path": "VARCHAR",
                 "n_items": "INTEGER", "created_at": "TIMESTAMP"},
    "prompts": {"dataset_id": "VARCHAR", "prompt_id": "VARCHAR", "prompt": "VARCHAR", "reference": "VARCHAR",
                "cohort": "VARCHAR", "extra": "JSON", "position": "INTEGER"},
    "rubrics": {"rubric_version": "VARCHAR", "name": "VARCHAR", "body": "JSON", "created_at": "TIMESTAMP",
                "parent_version": "VARCHAR"},
    "runs": {"run_id": "VARCHAR", "name": "VARCHAR", "config": "JSON", "config_hash": "VARCHAR", "status": "VARCHAR",
             "judge_id": "VARCHAR", "rubric_version": "VARCHAR", "train_dataset_id": "VARCHAR",
             "eval_dataset_id": "VARCHAR", "created_at": "TIMESTAMP", "finished_at": "TIMESTAMP",
             "recommended_iteration": "INTEGER", "error": "VARCHAR"},
    "iterations": {"run_id": "VARCHAR", "iteration": "INTEGER", "status": "VARCHAR", "model_path": "VARCHAR",
                   "model_hash": "VARCHAR", "regressed": "BOOLEAN", "gate_decision": "VARCHAR",
                   "pairs_kept": "INTEGER", "pairs_dropped": "INTEGER", "started_at": "TIMESTAMP",
                   "finished_at": "TIMESTAMP"},
    "candidates": {"candidate_id": "VARCHAR", "run_id": "VARCHAR", "iteration": "INTEGER", "prompt_id": "VARCHAR",
                   "text": "VARCHAR", "temperature": "DOUBLE", "seed": "BIGINT", "sample_index": "INTEGER",
                   "n_tokens": "INTEGER", "verification": "JSON", "score": "DOUBLE"},
    "judgements": {"judgement_id": "VARCHAR", "run_id": "VARCHAR", "iteration": "INTEGER", "prompt_id": "VARCHAR",
                   "candidate_a": "VARCHAR", "candidate_b": "VARCHAR", "judge_id": "VARCHAR", "winner": "VARCHAR",
                   "confidence": "DOUBLE", "rationale": "VARCHAR", "criteria": "JSON", "raw_reply": "VARCHAR",
                   "tokens_in": "INTEGER", "tokens_out": "INTEGER", "cost_usd": "DOUBLE", "latency_ms": "DOUBLE",
                   "cache_key": "VARCHAR", "created_at": "TIMESTAMP"},
    "pairs": {"pair_id": "VARCHAR", "run_id": "VARCHAR", "iteration": "INTEGER", "prompt_id": "VARCHAR",
              "prompt": "VARCHAR", "chosen": "VARCHAR", "rejected": "VARCHAR", "chosen_candidate": "VARCHAR",
              "rejected_candidate": "VARCHAR", "chosen_score": "DOUBLE", "rejected_score": "DOUBLE",
              "kept": "BOOLEAN", "drop_reason": "VARCHAR", "source": "VARCHAR", "rubric_version": "VARCHAR",
              "judge_id": "VARCHAR", "confidence": "DOUBLE", "created_at": "TIMESTAMP"},
    "evals": {"run_id": "VARCHAR", "iteration": "INTEGER", "metric": "VARCHAR", "cohort": "VARCHAR",
              "value": "DOUBLE", "n": "INTEGER"},
    "manifests": {"manifest_id": "VARCHAR", "run_id": "VARCHAR", "iteration": "INTEGER", "body": "JSON",
                  "created_at": "TIMESTAMP"},
    "jobs": {"job_id": "VARCHAR", "kind": "VARCHAR", "status": "VARCHAR", "run_id": "VARCHAR", "stage": "VARCHAR",
             "step": "INTEGER", "total": "INTEGER", "message": "VARCHAR", "params": "JSON", "pid": "INTEGER",
             "owner": "VARCHAR", "cancel_requested": "BOOLEAN", "created_at": "TIMESTAMP",
             "started_at": "TIMESTAMP", "heartbeat_at": "TIMESTAMP", "finished_at": "TIMESTAMP",
             "error": "VARCHAR"},
}
# Tables added by migrations after 001 (EXPECTED_SCHEMA above is the schema 001 alone builds).
EXPECTED_LATER_SCHEMA = {
    "judge_cache": {"cache_key": "VARCHAR", "judge_id": "VARCHAR", "verdict": "JSON", "created_at": "TIMESTAMP"},
    # 003_anchors
    "anchor_sets": {"anchor_set_id": "VARCHAR", "name": "VARCHAR", "source": "VARCHAR", "created_at": "TIMESTAMP",
                    "holdout_fraction": "DOUBLE", "holdout_seed": "BIGINT", "n_items": "INTEGER"},
    "anchor_items": {"item_id": "VARCHAR", "anchor_set_id": "VARCHAR", "prompt": "VARCHAR", "response_a": "VARCHAR",
                     "response_b": "VARCHAR", "slice": "VARCHAR", "source": "VARCHAR", "reference": "VARCHAR",
                     "is_holdout": "BOOLEAN", "position": "INTEGER", "extra": "JSON"},
    "anchor_labels": {"label_id": "VARCHAR", "item_id": "VARCHAR", "annotator": "VARCHAR",
                      "annotator_kind": "VARCHAR", "label": "VARCHAR", "shown_left": "VARCHAR", "note": "VARCHAR",
                      "created_at": "TIMESTAMP"},
    "adjudications": {"adjudication_id": "VARCHAR", "item_id": "VARCHAR", "adjudicator": "VARCHAR",
                      "label": "VARCHAR", "method": "VARCHAR", "note": "VARCHAR", "created_at": "TIMESTAMP"},
    "judge_anchor_verdicts": {"item_id": "VARCHAR", "judge_id": "VARCHAR", "rubric_version": "VARCHAR",
                              "winner": "VARCHAR", "confidence": "DOUBLE", "rationale": "VARCHAR",
                              "created_at": "TIMESTAMP"},
    "kappa_reports": {"report_id": "VARCHAR", "anchor_set_id": "VARCHAR", "judge_id": "VARCHAR",
                      "rubric_version": "VARCHAR", "annotators": "VARCHAR", "n": "INTEGER", "kappa": "DOUBLE",
                      "ci_low": "DOUBLE", "ci_high": "DOUBLE", "threshold": "DOUBLE", "passed": "BOOLEAN",
                      "override": "BOOLEAN", "override_reason": "VARCHAR", "body": "JSON", "created_at": "TIMESTAMP"},
    # 004_approvals
    "approvals": {"approval_id": "VARCHAR", "run_id": "VARCHAR", "iteration": "INTEGER", "filters": "JSON",
                  "approved_by": "VARCHAR", "approved_at": "TIMESTAMP", "n_pairs": "INTEGER",
                  "pairs_digest": "VARCHAR"},
    # 006_eval_outputs
    "eval_outputs": {"run_id": "VARCHAR", "iteration": "INTEGER", "prompt_id": "VARCHAR", "cohort": "VARCHAR",
                     "output": "VARCHAR", "n_tokens": "INTEGER", "checks": "JSON"},
    # 008_judge_batches
    "judge_batches": {"local_id": "VARCHAR", "batch_id": "VARCHAR", "provider": "VARCHAR", "judge_id": "VARCHAR",
                      "status": "VARCHAR", "provider_status": "VARCHAR", "n_requests": "INTEGER", "counts": "JSON",
                      "error": "VARCHAR", "created_at": "TIMESTAMP", "updated_at": "TIMESTAMP"},
    "judge_batch_requests": {"local_id": "VARCHAR", "custom_id": "VARCHAR"},
    # 009_label_undo_queues_rejections
    "anchor_label_retractions": {"label_id": "VARCHAR", "item_id": "VARCHAR", "retracted_by": "VARCHAR",
                                 "retracted_at": "TIMESTAMP"},
    "anchor_assignments": {"anchor_set_id": "VARCHAR", "item_id": "VARCHAR", "annotator": "VARCHAR",
                           "overlap": "INTEGER", "assigned_by": "VARCHAR", "assigned_at": "TIMESTAMP"},
}
# Columns later migrations add to tables of 001.
LATER_COLUMNS = {"runs": {"owner": "VARCHAR"},  # 007_run_owner
                 "approvals": {"rejected_pairs": "JSON"}}  # 009_label_undo_queues_rejections


def _full_schema() -> dict[str, dict[str, str]]:
    schema = {**EXPECTED_SCHEMA, **EXPECTED_LATER_SCHEMA}
    return {table: {**columns, **LATER_COLUMNS.get(table, {})} for table, columns in schema.items()}


LATER_PRIMARY_KEYS = {"judge_cache": ["cache_key"],
                      # 003_anchors
                      "anchor_sets": ["anchor_set_id"], "anchor_items": ["item_id"], "anchor_labels": ["label_id"],
                      "adjudications": ["adjudication_id"],
                      "judge_anchor_verdicts": ["item_id", "judge_id", "rubric_version"],
                      "kappa_reports": ["report_id"],
                      "approvals": ["approval_id"], "eval_outputs": ["run_id", "iteration", "prompt_id"],
                      # 008_judge_batches
                      "judge_batches": ["local_id"], "judge_batch_requests": ["local_id", "custom_id"],
                      # 009_label_undo_queues_rejections
                      "anchor_label_retractions": ["label_id"], "anchor_assignments": ["item_id", "annotator"]}
PRIMARY_KEYS = {
    "datasets": ["dataset_id"], "prompts": ["dataset_id", "prompt_id"], "rubrics": ["rubric_version"],
    "runs": ["run_id"], "iterations": ["run_id", "iteration"], "candidates": ["candidate_id"],
    "judgements": ["judgement_id"], "pairs": ["pair_id"], "evals": ["run_id", "iteration", "metric", "cohort"],
    "manifests": ["manifest_id"], "jobs": ["job_id"], "schema_migrations": ["version"],
}


def _describe(conn) -> dict[str, dict[str, str]]:
    tables = [t for (t,) in conn.execute("SELECT table_name FROM duckdb_tables() ORDER BY table_name").fetchall()]
    return {t: {row[0]: row[1] for row in conn.execute(f"DESCRIBE {t}").fetchall()} for t in tables}


def _primary_keys(conn) -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT table_name, constraint_column_names FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    return {table: list(columns) for table, columns in rows}


def test_empty_database_migrates_to_the_expected_schema():
    conn = duckdb.connect(":memory:")
    assert migrate(conn) == [m.version for m in discover_migrations()]
    assert _describe(conn) == _full_schema()
    assert _primary_keys(conn) == {**PRIMARY_KEYS, **LATER_PRIMARY_KEYS}
    indexes = {name for (name,) in conn.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
    assert {"pairs_run_iteration_kept", "judge_cache_judge", "judge_batches_judge_status",
            "judge_batch_requests_custom_id", "anchor_assignments_set_annotator"} <= indexes


def test_migrating_twice_applies_nothing_new(tmp_path):
    path = tmp_path / "nested" / "dir" / "wb.duckdb"  # parent folders are created
    known = discover_migrations()
    with Store(path) as store:
        assert store.schema_version == known[-1].version
    with Store(path) as store:
        rows = store.cursor().execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(m.version, m.name) for m in known]


def test_database_from_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "wb.duckdb"
    Store(path).close()
    known = discover_migrations()[-1].version
    conn = duckdb.connect(str(path))
    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, 'from_the_future')", [known + 1])
    conn.close()
    with pytest.raises(SchemaTooNewError) as info:
        Store(path)
    assert str(info.value) == (
        f"database {path} was written by schema version {known + 1}; this code knows up to {known}; "
        "upgrade rlaif-workbench"
    )
    Store(tmp_path / "other.duckdb").close()  # the refused store released its file lock properly
    duckdb.connect(str(path)).close()


def test_failing_migration_leaves_nothing_half_applied(tmp_path):
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    shutil.copy(MIGRATIONS_DIR / "001_initial.sql", migrations / "001_initial.sql")
    (migrations / "002_broken.sql").write_text(
        "CREATE TABLE annotators (annotator_id VARCHAR PRIMARY KEY);\n"
        "ALTER TABLE pairs ADD COLUMN approved BOOLEAN;\n"
        "INSERT INTO annotators VALUES ('ann-1');\n"
        "CREATE TABLE broken (x NOT_A_TYPE);\n"
    )
    conn = duckdb.connect(":memory:")
    with pytest.raises(MigrationError, match="002_broken.sql"):
        migrate(conn, migrations)
    assert applied_versions(conn) == [1]
    assert _describe(conn) == EXPECTED_SCHEMA  # no annotators table, no pairs.approved column

    (migrations / "002_broken.sql").unlink()
    (migrations / "002_annotators.sql").write_text("CREATE TABLE annotators (annotator_id VARCHAR PRIMARY KEY);\n")
    assert migrate(conn, migrations) == [2]
    assert applied_versions(conn) == [1, 2]


def test_migration_files_must_be_numbered_and_unique(tmp_path):
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (x INTEGER);")
    (tmp_path / "001_b.sql").write_text("CREATE TABLE b (x INTEGER);")
    with pytest.raises(MigrationError, match="share version 1"):
        discover_migrations(tmp_path)
    (tmp_path / "001_b.sql").unlink()
    (tmp_path / "two.sql").write_text("")
    with pytest.raises(MigrationError, match="NNN_name.sql"):
        discover_migrations(tmp_path)
