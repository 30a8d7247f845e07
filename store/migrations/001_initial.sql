-- 001_initial: every table of the workbench's first schema.
--
-- Conventions, so later migrations stay consistent:
--   * content-addressed ids (dataset_id, rubric_version, manifest_id) are sha256 hex strings;
--   * JSON columns hold what Python gave as dicts/lists (the store parses them back on read);
--   * timestamps are TIMESTAMP (naive, DuckDB session time zone) defaulting to the insert time;
--   * status sets are CHECK constraints, so a typo in a worker fails loudly instead of hiding a run;
--   * no FOREIGN KEYs: DuckDB forbids updating or deleting a referenced row and checks every
--     appended row, which would slow the million-pair bulk inserts; the repositories keep ids consistent.
-- A migration file must not contain BEGIN/COMMIT: the migrator wraps it in its own transaction.

CREATE TABLE datasets (
    dataset_id   VARCHAR PRIMARY KEY,
    name         VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL DEFAULT 'prompts',
    source_path  VARCHAR,
    n_items      INTEGER NOT NULL,
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE prompts (
    dataset_id   VARCHAR NOT NULL,
    prompt_id    VARCHAR NOT NULL,
    prompt       VARCHAR NOT NULL,
    reference    VARCHAR,
    cohort       VARCHAR,
    extra        JSON,
    position     INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, prompt_id)
);

CREATE TABLE rubrics (
    rubric_version  VARCHAR PRIMARY KEY,
    name            VARCHAR NOT NULL,
    body            JSON NOT NULL,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    parent_version  VARCHAR
);

CREATE TABLE runs (
    run_id                 VARCHAR PRIMARY KEY,
    name                   VARCHAR,
    config                 JSON NOT NULL,
    config_hash            VARCHAR,
    status                 VARCHAR NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'completed', 'stopped', 'failed', 'cancelled', 'interrupted')),
    judge_id               VARCHAR,
    rubric_version         VARCHAR,
    train_dataset_id       VARCHAR,
    eval_dataset_id        VARCHAR,
    created_at             TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at            TIMESTAMP,
    recommended_iteration  INTEGER,
    error                  VARCHAR
);

CREATE TABLE iterations (
    run_id         VARCHAR NOT NULL,
    iteration      INTEGER NOT NULL,
    status         VARCHAR NOT NULL DEFAULT 'running',
    model_path     VARCHAR,
    model_hash     VARCHAR,
    regressed      BOOLEAN,
    gate_decision  VARCHAR,
    pairs_kept     INTEGER,
    pairs_dropped  INTEGER,
    started_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at    TIMESTAMP,
    PRIMARY KEY (run_id, iteration)
);

CREATE TABLE candidates (
    candidate_id  VARCHAR PRIMARY KEY,
    run_id        VARCHAR NOT NULL,
    iteration     INTEGER NOT NULL,
    prompt_id     VARCHAR NOT NULL,
    text          VARCHAR NOT NULL,
    temperature   DOUBLE,
    seed          BIGINT,
    sample_index  INTEGER,
    n_tokens      INTEGER,
    verification  JSON,
    score         DOUBLE
);

CREATE TABLE judgements (
    judgement_id  VARCHAR PRIMARY KEY,
    run_id        VARCHAR,
    iteration     INTEGER,
    prompt_id     VARCHAR,
    candidate_a   VARCHAR,
    candidate_b   VARCHAR,
    judge_id      VARCHAR NOT NULL,
    winner        VARCHAR NOT NULL CHECK (winner IN ('a', 'b', 'tie', 'invalid')),
    confidence    DOUBLE,
    rationale     VARCHAR,
    criteria      JSON,
    raw_reply     VARCHAR,
    tokens_in     INTEGER,
    tokens_out    INTEGER,
    cost_usd      DOUBLE,
    latency_ms    DOUBLE,
    cache_key     VARCHAR,
    created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE pairs (
    pair_id             VARCHAR PRIMARY KEY,
    run_id              VARCHAR,
    iteration           INTEGER,
    prompt_id           VARCHAR,
    prompt              VARCHAR NOT NULL,
    -- a dropped pair may have no chosen/rejected at all (every candidate tied); a kept one has both
    chosen              VARCHAR,
    rejected            VARCHAR,
    chosen_candidate    VARCHAR,
    rejected_candidate  VARCHAR,
    chosen_score        DOUBLE,
    rejected_score      DOUBLE,
    kept                BOOLEAN NOT NULL DEFAULT true,
    -- a dropped pair must say why: the workbench shows drop reasons, never silent losses
    drop_reason         VARCHAR,
    source              VARCHAR,
    rubric_version      VARCHAR,
    judge_id            VARCHAR,
    confidence          DOUBLE,
    created_at          TIMESTAMP NOT NULL DEFAULT current_timestamp,
    CHECK (NOT kept OR (chosen IS NOT NULL AND rejected IS NOT NULL)),
    CHECK (kept OR drop_reason IS NOT NULL)
);
CREATE INDEX pairs_run_iteration_kept ON pairs (run_id, iteration, kept);

CREATE TABLE evals (
    run_id     VARCHAR NOT NULL,
    iteration  INTEGER NOT NULL,
    metric     VARCHAR NOT NULL,
    cohort     VARCHAR NOT NULL DEFAULT 'all',
    value      DOUBLE,
    n          INTEGER,
    PRIMARY KEY (run_id, iteration, metric, cohort)
);

CREATE TABLE manifests (
    manifest_id  VARCHAR PRIMARY KEY,
    run_id       VARCHAR NOT NULL,
    iteration    INTEGER,
    body         JSON NOT NULL,
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE jobs (
    job_id            VARCHAR PRIMARY KEY,
    kind              VARCHAR NOT NULL,
    status            VARCHAR NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted')),
    run_id            VARCHAR,
    stage             VARCHAR,
    step              INTEGER,
    total             INTEGER,
    message           VARCHAR,
    params            JSON,
    -- the process that owns the job (pid for people, a per-process token for the code): a restart can
    -- tell a job of this process from one whose process is gone, even when the OS reuses the pid
    pid               INTEGER,
    owner             VARCHAR,
    -- a page asks a worker to stop by setting this; the worker polls it between steps
    cancel_requested  BOOLEAN NOT NULL DEFAULT false,
    created_at        TIMESTAMP NOT NULL DEFAULT current_timestamp,
    started_at        TIMESTAMP,
    heartbeat_at      TIMESTAMP,
    finished_at       TIMESTAMP,
    error             VARCHAR
);
