"""A content-addressed verdict cache in DuckDB: a re-run asks the judge nothing it has already answered.

Why the key covers so much: a peer pipeline keyed its cache on the candidates alone, so changing the judge model or
the prompt template returned stale verdicts. Here the key is sha256 over the judge's ``describe()`` (model, provider,
settings that shape a verdict, nested judges of combinators), the prompt ``TEMPLATE_VERSION``, the rubric version,
the prompt, the reference, and both candidates in their order ((A, B) and (B, A) are different questions to a
position-biased judge). Invalid verdicts are not cached, so a timeout or an unparseable reply is retried next time.

A hit costs nothing this run: its tokens, cost and latency are reported as 0 (the stored verdict keeps the originals).

    judge = CachedJudge(AnthropicJudge(settings), store); judge.compare(comparisons, rubric); judge.stats
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Sequence

from rlaif.judges.base import Comparison, Judge, JudgeStats, Verdict
from rlaif.judges.prompting import TEMPLATE_VERSION
from rlaif.rubric import Rubric
from store.content_hash import content_hash
from store.secrets_guard import refuse_secrets

log = logging.getLogger(__name__)


def cache_key(judge_description: dict[str, Any], comparison: Comparison, rubric_version: str,
              template_version: str = TEMPLATE_VERSION) -> str:
    """sha256 over every input that shapes a verdict."""
    return content_hash({
        "judge": judge_description, "template_version": template_version, "rubric_version": rubric_version,
        "prompt": comparison.prompt, "reference": comparison.reference,
        "a": comparison.a, "b": comparison.b,  # positional: (A, B) and (B, A) get different keys
    })


class CachedJudge(Judge):
    """Wraps any judge; transparent to callers (same judge id and description as the inner judge)."""

    def __init__(self, inner: Judge, store):
        self.inner = inner
        self.inner_judges = (inner,)
        self.store = store
        self.judge_id = inner.judge_id
        self.stats = JudgeStats(hits=0, misses=0, stored=0, refused=0)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def cache_key(self, comparison: Comparison, rubric: Rubric) -> str:
        return cache_key(self.inner.describe(), comparison, rubric.version)

    def _storable(self, verdict: Verdict) -> bool:
        """The store refuses key-shaped values; such a verdict is returned but not cached (and the run goes on)."""
        try:
            refuse_secrets(verdict.to_dict(), "verdict")
        except ValueError as err:
            self.stats.add(refused=1)
            log.warning("%s: verdict not cached: %s", self.judge_id, err)
            return False
        return True

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        if not comparisons:
            return []
        description = self.inner.describe()
        keys = [cache_key(description, c, rubric.version) for c in comparisons]
        stored = self.store.judge_cache.get_many(keys)
        out: list[Verdict | None] = [None] * len(comparisons)
        missing: dict[str, list[int]] = {}  # one inner call per distinct key, even when a batch repeats it
        for i, key in enumerate(keys):
            if key in stored:
                out[i] = replace(Verdict(**stored[key]), tokens_in=0, tokens_out=0, cost_usd=0.0, latency_ms=0.0)
            else:
                missing.setdefault(key, []).append(i)
        self.stats.add(hits=len(comparisons) - sum(len(v) for v in missing.values()), misses=len(missing))
        if missing:
            firsts = [idxs[0] for idxs in missing.values()]
            fresh = self.inner.compare([comparisons[i] for i in firsts], rubric)
            to_store = []
            for (key, idxs), verdict in zip(missing.items(), fresh):
                for i in idxs:
                    out[i] = verdict
                if verdict.is_valid and self._storable(verdict):
                    to_store.append((key, verdict.judge_id or self.judge_id, verdict.to_dict()))
            if to_store:
                self.store.judge_cache.put_many(to_store)
                self.stats.add(stored=len(to_store))
        return out  # type: ignore[return-value]
