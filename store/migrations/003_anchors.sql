-- 003_anchors: human anchor calibration (issue 4): anchor sets, append-only labels, adjudications, the judge
-- verdicts measured against them, and the kappa reports the gate decided on.
--
-- Decisions, so later migrations stay consistent:
--   * labels are APPEND-ONLY: a relabel is a new row and the latest row per (item_id, annotator) counts. label_id
--     values are time-ordered (store.bulk.new_ids), so "latest" is ORDER BY label_id DESC: created_at alone cannot
--     order two rows written in one transaction (DuckDB's current_timestamp is the transaction's start time);
--   * a label is stored in the item's ORIGINAL orientation (A = response_a); shown_left records which response
--     the annotator saw on the left, so position bias of annotators can be audited;
--   * is_holdout is drawn once at import and never updated: the holdout is locked. anchor_tuning_items is the
--     one relation tuning and gate queries read; it cannot return a holdout item.

CREATE TABLE anchor_sets (
    anchor_set_id     VARCHAR PRIMARY KEY,
    name              VARCHAR NOT NULL,
    -- where the items came from: a file path, or run:<run_id> for a set sampled from a run
    source            VARCHAR,
    created_at        TIMESTAMP NOT NULL DEFAULT current_timestamp,
    holdout_fraction  DOUBLE NOT NULL CHECK (holdout_fraction >= 0 AND holdout_fraction < 1),
    holdout_seed      BIGINT NOT NULL,
    n_items           INTEGER NOT NULL
);

CREATE TABLE anchor_items (
    item_id        VARCHAR PRIMARY KEY,
    anchor_set_id  VARCHAR NOT NULL,
    prompt         VARCHAR NOT NULL,
    response_a     VARCHAR NOT NULL,
    response_b     VARCHAR NOT NULL,
    slice          VARCHAR NOT NULL DEFAULT 'default',
    source         VARCHAR,
    -- the golden answer when the task has one (verifier judges need it)
    reference      VARCHAR,
    is_holdout     BOOLEAN NOT NULL,
    position       INTEGER NOT NULL,
    extra          JSON
);
CREATE INDEX anchor_items_set_position ON anchor_items (anchor_set_id, position);

CREATE TABLE anchor_labels (
    label_id        VARCHAR PRIMARY KEY,
    item_id         VARCHAR NOT NULL,
    annotator       VARCHAR NOT NULL,
    annotator_kind  VARCHAR NOT NULL CHECK (annotator_kind IN ('human', 'oracle', 'adjudicator')),
    label           VARCHAR NOT NULL CHECK (label IN ('A', 'B', 'tie', 'skip')),
    shown_left      VARCHAR CHECK (shown_left IN ('a', 'b')),
    note            VARCHAR,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX anchor_labels_item ON anchor_labels (item_id, annotator);

CREATE TABLE adjudications (
    adjudication_id  VARCHAR PRIMARY KEY,
    item_id          VARCHAR NOT NULL,
    adjudicator      VARCHAR NOT NULL,
    label            VARCHAR NOT NULL CHECK (label IN ('A', 'B', 'tie')),
    -- majority: the recorded consensus of the latest human labels; override: an adjudicator's own decision
    method           VARCHAR NOT NULL CHECK (method IN ('majority', 'override')),
    note             VARCHAR,
    created_at       TIMESTAMP NOT NULL DEFAULT current_timestamp,
    CHECK (method = 'majority' OR note IS NOT NULL)
);

CREATE TABLE judge_anchor_verdicts (
    item_id         VARCHAR NOT NULL,
    judge_id        VARCHAR NOT NULL,
    rubric_version  VARCHAR NOT NULL,
    -- in the item's orientation: a = response_a
    winner          VARCHAR NOT NULL CHECK (winner IN ('a', 'b', 'tie', 'invalid')),
    confidence      DOUBLE,
    rationale       VARCHAR,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (item_id, judge_id, rubric_version)
);

CREATE TABLE kappa_reports (
    report_id        VARCHAR PRIMARY KEY,
    anchor_set_id    VARCHAR NOT NULL,
    judge_id         VARCHAR NOT NULL,
    rubric_version   VARCHAR NOT NULL,
    annotators       VARCHAR NOT NULL,
    n                INTEGER NOT NULL,
    kappa            DOUBLE,
    ci_low           DOUBLE,
    ci_high          DOUBLE,
    threshold        DOUBLE,
    passed           BOOLEAN NOT NULL,
    override         BOOLEAN NOT NULL DEFAULT false,
    override_reason  VARCHAR,
    body             JSON NOT NULL,
    created_at       TIMESTAMP NOT NULL DEFAULT current_timestamp,
    CHECK (NOT override OR override_reason IS NOT NULL)
);

CREATE VIEW anchor_tuning_items AS SELECT * FROM anchor_items WHERE NOT is_holdout;
CREATE VIEW anchor_holdout_items AS SELECT * FROM anchor_items WHERE is_holdout;
