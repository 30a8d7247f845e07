import pytest

from rlaif.judges import Comparison, Verdict, make_judge
from rlaif.judges.fake import FakeJudge
from rlaif.judges.verifier import VerifierJudge
from rlaif.rubric import rubric_from_dict

RUBRIC = rubric_from_dict({"name": "r", "criteria": [
    {"name": "ok", "hard": True, "verifier": "sql_executes"},
    {"name": "fmt", "verifier": "sql_format"}]})


def test_invalid_is_never_unflipped_into_a_winner():
    v = Verdict.invalid("j", "unparseable")
    assert v.unflipped().winner == "invalid"
    assert Verdict("tie", 0.5).unflipped().winner == "tie"
    flipped = Verdict("a", 0.9, criteria={"ok": {"a": True, "b": False}}).unflipped()
    assert flipped.winner == "b" and flipped.criteria == {"ok": {"a": False, "b": True}}


def test_verdict_rejects_out_of_range_values():
    with pytest.raises(ValueError):
        Verdict("2")
    with pytest.raises(ValueError):
        Verdict("a", confidence=1.5)


class Checks:
    def __init__(self, table):
        self.table = table
        self.calls = []

    def __call__(self, text, reference):
        self.calls.append(text)
        table = self.table

        class V:
            def criteria(self):
                return table[text]
        return V()


def test_verifier_judge_prefers_hard_passes_and_ties_equal_scores():
    verify = Checks({"good": {"sql_executes": True, "sql_format": True},
                     "sloppy": {"sql_executes": True, "sql_format": False},
                     "broken": {"sql_executes": False, "sql_format": True},
                     "good2": {"sql_executes": True, "sql_format": True}})
    judge = VerifierJudge(verify)
    out = judge.compare([Comparison("p", "broken", "sloppy", "ref"), Comparison("p", "good", "sloppy", "ref"),
                         Comparison("p", "good", "good2", "ref"), Comparison("p", "good", "x", None)], RUBRIC)
    assert [v.winner for v in out] == ["b", "a", "tie", "invalid"]
    assert out[0].criteria["sql_executes"] == {"a": False, "b": True}
    judge.compare([Comparison("p", "good", "sloppy", "ref")], RUBRIC)
    assert verify.calls.count("good") == 1  # cached per candidate


def test_stub_and_biased_judges_are_deterministic_opposites():
    c = [Comparison("p", "short", "much longer answer"), Comparison("p", "same", "same")]
    stub, biased = make_judge("stub"), make_judge("biased")
    assert [v.winner for v in stub.compare(c, RUBRIC)] == ["a", "tie"]
    assert [v.winner for v in biased.compare(c, RUBRIC)] == ["b", "tie"]
    with pytest.raises(ValueError, match="unknown judge"):
        make_judge("nope")
    with pytest.raises(ValueError, match="needs a verifier"):
        make_judge("verifier")


def test_fake_judge_records_history_and_plays_queue():
    fake = FakeJudge().enqueue("a", "invalid")
    out = fake.compare([Comparison("p", "x", "y")] * 3, RUBRIC)
    assert [v.winner for v in out] == ["a", "invalid", "tie"] and len(fake.history) == 3
