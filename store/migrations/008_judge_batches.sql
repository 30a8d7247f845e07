-- 008_judge_batches: the provider batches (Anthropic Message Batches, OpenAI Batch API) a batch-mode judge submitted.
--
-- A batch is paid for once submitted and answers within 24 h, so its id is written here before the judge waits:
-- a run killed while waiting finds its pending batch again (by judge id and request keys) and polls it instead of
-- submitting, and paying for, the same requests twice. A row is written (status 'submitting') before the provider
-- is called and gets its batch_id right after. Each request's custom_id is the judge cache key of its comparison,
-- so a finished batch's verdicts land in judge_cache under the keys online mode would use.
--
-- status: submitting -> pending -> ended -> collected (verdicts in judge_cache), or failed / abandoned.

CREATE TABLE judge_batches (
    local_id         VARCHAR PRIMARY KEY,
    batch_id         VARCHAR,
    provider         VARCHAR NOT NULL,
    judge_id         VARCHAR NOT NULL,
    status           VARCHAR NOT NULL,
    provider_status  VARCHAR,
    n_requests       INTEGER NOT NULL,
    counts           JSON,
    error            VARCHAR,
    created_at       TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at       TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX judge_batches_judge_status ON judge_batches (judge_id, status);

CREATE TABLE judge_batch_requests (
    local_id   VARCHAR NOT NULL,
    custom_id  VARCHAR NOT NULL,
    PRIMARY KEY (local_id, custom_id)
);
CREATE INDEX judge_batch_requests_custom_id ON judge_batch_requests (custom_id);
