"""The stable import path of the loop's Python API (the README's): the loop itself lives in ``rlaif.loop``.

    from rlaif.pipeline import RLAIFPipeline
"""

from rlaif.loop import BudgetExhausted, IterationResult, NothingToResume, ProgressEvent, RLAIFPipeline, RunCancelled
from rlaif.loop.records import pairs_hash

__all__ = ["BudgetExhausted", "IterationResult", "NothingToResume", "ProgressEvent", "RLAIFPipeline",
           "RunCancelled", "pairs_hash"]
