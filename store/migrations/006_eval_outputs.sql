-- Held-out generations per iteration: the eval judge compares iteration k's outputs with k-1's and the base's,
-- and a resumed run needs the outputs of iterations finished before the crash.
CREATE TABLE eval_outputs (
    run_id      VARCHAR NOT NULL,
    iteration   INTEGER NOT NULL,
    prompt_id   VARCHAR NOT NULL,
    cohort      VARCHAR,
    output      VARCHAR NOT NULL,
    n_tokens    INTEGER,
    checks      JSON,
    PRIMARY KEY (run_id, iteration, prompt_id)
);
