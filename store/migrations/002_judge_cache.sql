-- 002_judge_cache: content-addressed judge verdicts, so a re-run asks the judge nothing it has answered before.
--
-- cache_key is sha256 over everything that shapes a verdict (judge model and settings, prompt template version,
-- rubric version, prompt, both candidates in order); see rlaif/judges/cache.py. Only valid verdicts are stored:
-- an invalid one (a timeout, an unparseable reply) must be retried, not replayed.

CREATE TABLE judge_cache (
    cache_key   VARCHAR PRIMARY KEY,
    judge_id    VARCHAR NOT NULL,
    verdict     JSON NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX judge_cache_judge ON judge_cache (judge_id);
