"""Batch mode of the API judges: every comparison of one ``compare`` call goes to the provider as one batch (per
chunk of the provider's limits), at half price, and the judge waits for the results.

Why the store is part of it: a batch is billed once submitted and answers within 24 hours, so a run killed while it
waits must find the batch again rather than pay for it twice. Before the provider is called, a ``judge_batches`` row
names the requests (``custom_id`` = the judge cache key of the comparison, the key online mode caches under); right
after, it gets the provider's batch id. A later call asks the store for open batches holding its keys and polls those
instead of submitting; only keys no open batch holds are submitted. Verdicts go into the judge cache before the row
is marked ``collected``, so a crash between the two re-reads the results, never resubmits.

Every request without a usable reply (errored, expired, canceled, a result we cannot read, a reply the judge parser
rejects) becomes an ``invalid`` verdict that says why; invalid verdicts are not cached, so a later run asks again.

    verdicts = BatchJudging(judge, store).compare(comparisons, rubric)   # judge: a RubricLLMJudge in mode: batch
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

from rlaif.judges.base import Comparison, Verdict
from rlaif.judges.batches.providers import BatchAPI, BatchState, batch_api_for
from rlaif.judges.cache import cache_key
from rlaif.judges.prompting import JudgePrompt
from rlaif.rubric import Rubric
from store.secrets_guard import refuse_secrets

log = logging.getLogger(__name__)
_POLL_GROWTH = 1.5


@dataclass
class _Open:
    """A submitted batch this call waits for."""

    local_id: str
    batch_id: str
    custom_ids: list[str]
    reserved_usd: float = 0.0  # budget held for it until its results are priced
    resumed: bool = False
    last_seen: tuple | None = None  # (provider status, counts, ended) of the last poll


class BatchJudging:
    """The batch path of one ``RubricLLMJudge``: submit (or resume), wait, read, price, cache."""

    def __init__(self, judge: Any, store: Any, api: BatchAPI | None = None):
        self.judge = judge
        self.store = store
        self.api = api or batch_api_for(judge.client)

    # ---- the entry point

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        if not comparisons:
            return []
        j = self.judge
        j.stats.add(comparisons=len(comparisons))
        description = j.describe()
        keys = [cache_key(description, c, rubric.version) for c in comparisons]
        first: dict[str, Comparison] = {}
        for key, comparison in zip(keys, comparisons):
            first.setdefault(key, comparison)  # one request per distinct question, even when a call repeats it
        verdicts: dict[str, Verdict] = {}
        for key, stored in self.store.judge_cache.get_many(list(first)).items():
            verdicts[key] = replace(Verdict(**stored), tokens_in=0, tokens_out=0, cost_usd=0.0, latency_ms=0.0)
        j.stats.add(cache_hits=len(verdicts))
        todo = {key: j.render(c, rubric) for key, c in first.items() if key not in verdicts}
        if todo:
            verdicts.update(self._judge(todo))
        return [verdicts[key] for key in keys]

    # ---- submit or resume, then wait

    def _judge(self, prompts: dict[str, JudgePrompt]) -> dict[str, Verdict]:
        j, batches = self.judge, self.store.judge_batches
        for row in batches.unconfirmed(j.judge_id):
            # The run died between recording the batch and hearing from the provider: we cannot know whether it
            # was accepted, and an unconfirmed batch has no id to poll, so its requests are submitted again.
            batches.update(row["local_id"], status="abandoned",
                           error="the run stopped before the provider confirmed this batch")
            log.warning("%s: batch %s was never confirmed by the provider; its requests are submitted again",
                        j.judge_id, row["local_id"])
        waiting = [_Open(r["local_id"], r["batch_id"], r["custom_ids"], resumed=True)
                   for r in batches.open_for(j.judge_id, list(prompts))]
        held = {key for b in waiting for key in b.custom_ids}
        if waiting:
            self._say(f"{j.judge_id}: resuming {len(waiting)} batch(es) already submitted "
                      f"({len(held & set(prompts))} of {len(prompts)} requests); nothing is submitted twice")
        out: dict[str, Verdict] = {}
        new = [key for key in prompts if key not in held]
        if new:
            submitted, refused = self._submit(new, prompts)
            waiting.extend(submitted)
            out.update(refused)
        out.update(self._wait(waiting, prompts))
        for key in prompts:
            if key not in out:  # cannot happen unless a batch lost a request; still never a winner
                j.stats.add(invalid=1, errors=1)
                out[key] = Verdict.invalid(j.judge_id, "no result for this request")
        return {key: out[key] for key in prompts}

    def _submit(self, keys: list[str], prompts: dict[str, JudgePrompt]) -> tuple[list[_Open], dict[str, Verdict]]:
        """Budget check for the whole batch, then one provider batch per chunk, each recorded before and after."""
        j = self.judge
        worst = {key: j.worst_case_cost(prompts[key]) for key in keys}
        total = sum(worst.values())
        if not j.budget.reserve(total):
            reason = self._over_budget(len(keys), total)
            log.warning("%s: %s", j.judge_id, reason)
            j.stats.add(invalid=len(keys), budget_exhausted=len(keys))
            return [], {key: Verdict.invalid(j.judge_id, reason) for key in keys}
        lines = [self.api.line(key, prompts[key]) for key in keys]
        submitted: list[_Open] = []
        failed: dict[str, Verdict] = {}
        for chunk in self.api.chunks(lines):
            chunk_keys = [line["custom_id"] for line in chunk]
            reserved = sum(worst[key] for key in chunk_keys)
            local_id = self.store.judge_batches.start(j.judge_id, self.api.provider, chunk_keys)
            state, error = self._create(chunk)
            if state is None:
                self.store.judge_batches.update(local_id, status="failed", error=error)
                j.budget.settle(reserved, 0.0)
                j.stats.add(invalid=len(chunk_keys), errors=len(chunk_keys))
                failed.update({key: Verdict.invalid(j.judge_id, error) for key in chunk_keys})
                continue
            self.store.judge_batches.submitted(local_id, state.batch_id, state.provider_status)
            j.stats.add(batches=1, requests=len(chunk_keys))
            self._say(f"{j.judge_id}: submitted batch {state.batch_id} of {len(chunk_keys)} requests")
            submitted.append(_Open(local_id, state.batch_id, chunk_keys, reserved))
        return submitted, failed

    def _over_budget(self, n: int, usd: float) -> str:
        b = self.judge.budget
        left = max(0.0, (b.limit or 0.0) - b.spent - b.reserved)
        return (f"budget exhausted: a batch of {n} requests may cost up to ${usd:.4f} at the batch rate, but only "
                f"${left:.4f} of budget_usd ${b.limit:g} is left; nothing was submitted")

    def _create(self, chunk: list[dict[str, Any]]) -> tuple[BatchState | None, str]:
        """Submit, retrying what surely was not accepted (429, 5xx); a timeout is not retried: it may have been."""
        j = self.judge
        for attempt in range(j.settings.max_retries + 1):
            try:
                return self.api.submit(chunk), ""
            except Exception as exc:
                failure = j.client.classify(exc)
                if not (failure.retryable and failure.reason.startswith("HTTP")) or attempt == j.settings.max_retries:
                    return None, j.safe_text(f"batch submit failed: {failure.reason}")
                j.stats.add(retries=1)
                delay = failure.retry_after if failure.retry_after is not None else j.backoff_s(attempt)
                time.sleep(min(delay, j.settings.max_retry_after_s))
        raise AssertionError("unreachable")

    def _wait(self, waiting: list[_Open], prompts: dict[str, JudgePrompt]) -> dict[str, Verdict]:
        """Poll every open batch with a growing interval until each has ended or ``max_wait_s`` has passed."""
        j, s = self.judge, self.judge.settings
        out: dict[str, Verdict] = {}
        started = time.monotonic()
        interval = s.poll_interval_s
        states: dict[str, BatchState] = {}
        while waiting:
            for batch in list(waiting):
                state = self._poll(batch, out)
                if state is None or state.ended:
                    waiting.remove(batch)
                    if state is not None:
                        out.update(self._collect(batch, state, prompts, started))
                else:
                    states[batch.local_id] = state
            if not waiting:
                break
            waited = time.monotonic() - started
            self._say(self._progress(waiting, states, waited))
            if waited + interval > s.max_wait_s:
                for batch in waiting:
                    reason = (f"batch {batch.batch_id} still {states[batch.local_id].provider_status} after "
                              f"{s.max_wait_s:g} s (max_wait_s); a re-run resumes it without submitting again")
                    j.stats.add(invalid=len(batch.custom_ids))
                    out.update({key: Verdict.invalid(j.judge_id, reason) for key in batch.custom_ids})
                log.warning("%s: stopped waiting for %d batch(es) after %.0f s", j.judge_id, len(waiting), waited)
                break
            time.sleep(interval)
            interval = min(interval * _POLL_GROWTH, s.poll_max_interval_s)
        return out

    def _poll(self, batch: _Open, out: dict[str, Verdict]) -> BatchState | None:
        """The batch's state; None when it failed as a whole (its requests are then invalid in ``out``)."""
        j = self.judge
        try:
            state = self.api.status(batch.batch_id)
        except Exception as exc:
            failure = j.client.classify(exc)
            if failure.retryable:  # a blip while polling: the batch is fine, ask again next round
                j.stats.add(poll_errors=1)
                return BatchState(batch.batch_id, f"unknown ({failure.reason})", False)
            return self._fail(batch, out, j.safe_text(f"batch {batch.batch_id} cannot be polled: {failure.reason}"))
        seen = (state.provider_status, state.counts, state.ended)
        if seen != batch.last_seen:  # write on change only: a quiet poll must leave the store file to others
            batch.last_seen = seen
            self.store.judge_batches.update(batch.local_id, provider_status=state.provider_status,
                                            counts=state.counts, status="ended" if state.ended and not state.failed
                                            else None)
        if state.failed:
            return self._fail(batch, out, j.safe_text(state.failed))
        return state

    def _fail(self, batch: _Open, out: dict[str, Verdict], reason: str) -> None:
        j = self.judge
        self.store.judge_batches.update(batch.local_id, status="failed", error=reason)
        j.budget.settle(batch.reserved_usd, 0.0)
        j.stats.add(invalid=len(batch.custom_ids), errors=len(batch.custom_ids))
        log.warning("%s: %s", j.judge_id, reason)
        out.update({key: Verdict.invalid(j.judge_id, reason) for key in batch.custom_ids})
        return None

    def _progress(self, waiting: list[_Open], states: dict[str, BatchState], waited: float) -> str:
        total = sum(len(b.custom_ids) for b in waiting)
        done = 0
        for b in waiting:
            counts = states[b.local_id].counts
            if "processing" in counts:  # anthropic: processing, succeeded, errored, canceled, expired
                done += len(b.custom_ids) - int(counts.get("processing") or 0)
            else:  # openai: total, completed, failed
                done += int(counts.get("completed") or 0) + int(counts.get("failed") or 0)
        status = ", ".join(sorted({states[b.local_id].provider_status for b in waiting}))
        return (f"{self.judge.judge_id}: waiting for {len(waiting)} batch(es): {done}/{total} requests done "
                f"({status}); {waited:.0f} s of max {self.judge.settings.max_wait_s:g} s")

    # ---- results into verdicts, the cache and the budget

    def _collect(self, batch: _Open, state: BatchState, prompts: dict[str, JudgePrompt],
                 started: float) -> dict[str, Verdict]:
        j = self.judge
        latency_ms = (time.monotonic() - started) * 1000.0
        results, unreadable = {}, None
        try:
            for result in self.api.results(state):
                results[result.custom_id] = result
        except Exception as exc:  # the rest of the stream is lost for now; the batch stays 'ended' for a re-run
            unreadable = j.safe_text(f"results of batch {batch.batch_id} unreadable: {j.client.classify(exc).reason}")
            log.warning("%s: %s", j.judge_id, unreadable)
        verdicts: dict[str, Verdict] = {}
        for key in batch.custom_ids:
            result = results.get(key)
            if result is None:
                reason = unreadable or f"no result for this request in batch {batch.batch_id} ({state.provider_status})"
                j.stats.add(invalid=1, errors=1)
                verdicts[key] = Verdict.invalid(j.judge_id, reason)
            elif result.reply is None:
                j.stats.add(invalid=1, errors=1)
                verdicts[key] = Verdict.invalid(j.judge_id, j.safe_text(f"batch request {result.error}"))
            else:
                verdicts[key] = j.verdict_of(prompts.get(key), result.reply, latency_ms, batch=True)
        self._cache(verdicts)
        j.budget.settle(batch.reserved_usd, sum(v.cost_usd for v in verdicts.values()))
        if unreadable is None:
            self.store.judge_batches.update(batch.local_id, status="collected")
        valid = sum(v.is_valid for v in verdicts.values())
        self._say(f"{j.judge_id}: batch {batch.batch_id} {state.provider_status}: {valid}/{len(verdicts)} verdicts")
        return verdicts

    def _cache(self, verdicts: dict[str, Verdict]) -> None:
        entries = []
        for key, verdict in verdicts.items():
            if not verdict.is_valid:
                continue
            try:
                refuse_secrets(verdict.to_dict(), "verdict")
            except ValueError as err:  # returned, not cached (like CachedJudge)
                log.warning("%s: verdict not cached: %s", self.judge.judge_id, err)
                continue
            entries.append((key, verdict.judge_id or self.judge.judge_id, verdict.to_dict()))
        if entries:
            self.store.judge_cache.put_many(entries)

    def _say(self, line: str) -> None:
        progress = getattr(self.judge, "on_progress", None)
        if progress is not None:
            progress(line)
        else:
            log.info("%s", line)
