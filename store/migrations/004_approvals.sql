-- 004_approvals: who approved which pair set for export, and when.
--
-- An approval pins a selection (run, iteration, filters) together with the number of pairs it matched and a
-- digest of their ids, so an export made later can prove it wrote exactly the set a person signed off on.

CREATE TABLE approvals (
    approval_id   VARCHAR PRIMARY KEY,
    run_id        VARCHAR NOT NULL,
    iteration     INTEGER,
    filters       JSON NOT NULL,
    approved_by   VARCHAR NOT NULL,
    approved_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    n_pairs       INTEGER NOT NULL,
    pairs_digest  VARCHAR NOT NULL
);
