"""The loop layer: the project assembly (``project``), the stages of an iteration (``stages``), their outputs as store
rows (``records``), where a run stands (``state``), the pipeline that calls them in order (``pipeline``), and
reproduction of an iteration from its manifest (``reproduce``).

    from rlaif.loop import RLAIFPipeline
"""

from rlaif.loop.pipeline import BudgetExhausted, IterationResult, ProgressEvent, RLAIFPipeline
from rlaif.loop.project import Project
from rlaif.loop.stages import RunCancelled
from rlaif.loop.state import NothingToResume

__all__ = ["BudgetExhausted", "IterationResult", "NothingToResume", "ProgressEvent", "Project", "RLAIFPipeline",
           "RunCancelled"]
