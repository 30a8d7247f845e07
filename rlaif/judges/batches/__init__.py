"""Batch mode of the API judges (``judge.options.mode: batch``): the providers' batch APIs at half price, with every
submitted batch kept in the store so a killed run resumes it instead of paying twice. See ``runner``.

    judge = AnthropicJudge(LLMJudgeSettings(model="claude-haiku-4-5", mode="batch"), store=store)
"""

from rlaif.judges.batches.providers import AnthropicBatchAPI, BatchAPI, BatchResult, BatchState, OpenAIBatchAPI
from rlaif.judges.batches.runner import BatchJudging

__all__ = ["AnthropicBatchAPI", "BatchAPI", "BatchJudging", "BatchResult", "BatchState", "OpenAIBatchAPI"]
