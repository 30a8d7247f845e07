"""A scriptable fake judge for tests (like llm's MockModel): ``enqueue`` verdicts, read ``history``.

Fakes over mocks: the fake is a real Judge, so code under test cannot tell it apart, and tests read what was asked.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Sequence

from rlaif.judges.base import Comparison, Judge, Verdict
from rlaif.rubric import Rubric


class FakeJudge(Judge):
    def __init__(self, judge_id: str = "fake", default: str | Callable[[Comparison], str] = "tie"):
        self.judge_id = judge_id
        self.default = default
        self.queue: deque[str | Verdict] = deque()
        self.history: list[Comparison] = []

    def enqueue(self, *winners: str | Verdict) -> "FakeJudge":
        self.queue.extend(winners)
        return self

    def compare(self, comparisons: Sequence[Comparison], rubric: Rubric) -> list[Verdict]:
        out = []
        for c in comparisons:
            self.history.append(c)
            item = self.queue.popleft() if self.queue else (self.default(c) if callable(self.default) else self.default)
            out.append(item if isinstance(item, Verdict)
                       else Verdict(item, 1.0 if item in ("a", "b") else 0.0, "scripted", judge_id=self.judge_id))
        return out
