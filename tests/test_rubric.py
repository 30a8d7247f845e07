import pytest

from rlaif.rubric import RubricError, rubric_from_dict

BODY = {"name": "sql", "criteria": [
    {"name": "executes", "description": "runs", "hard": True, "verifier": "sql_executes"},
    {"name": "matches", "description": "right rows", "hard": True, "verifier": "sql_result_matches", "weight": 2},
    {"name": "format", "description": "one statement", "weight": 0.5, "verifier": "sql_format"},
], "principles": ["never invent columns"]}


def test_version_is_a_content_hash():
    a, b = rubric_from_dict(BODY), rubric_from_dict(BODY)
    assert a.version == b.version
    changed = dict(BODY, principles=["never invent tables"])
    assert rubric_from_dict(changed).version != a.version


def test_score_puts_every_hard_pass_above_every_hard_fail():
    r = rubric_from_dict(BODY)
    perfect = r.score({"sql_executes": True, "sql_result_matches": True, "sql_format": True})
    right_but_sloppy = r.score({"sql_executes": True, "sql_result_matches": True, "sql_format": False})
    wrong_but_neat = r.score({"sql_executes": True, "sql_result_matches": False, "sql_format": True})
    broken = r.score({"sql_executes": False, "sql_result_matches": False, "sql_format": False})
    assert perfect == 1.0 and broken == 0.0
    assert perfect > right_but_sloppy > 0.5 > wrong_but_neat > broken


def test_render_lists_criteria_and_principles():
    text = rubric_from_dict(BODY).render()
    assert "R1. executes (hard requirement): runs" in text and "- never invent columns" in text


@pytest.mark.parametrize("body, words", [
    ({"criteria": []}, "name"),
    ({"name": "x", "criteria": []}, "criteria"),
    ({"name": "x", "criteria": [{"name": "a", "weight": -1}]}, "criteria[0].weight"),
    ({"name": "x", "criteria": [{"name": "a", "verifier": "nope"}]}, "criteria[0].verifier"),
    ({"name": "x", "criteria": [{"name": "a"}, {"name": "a"}]}, "duplicate criterion"),
    ({"name": "x", "criteria": [{"name": "a", "colour": "red"}]}, "unknown field"),
])
def test_invalid_rubrics_name_the_field(body, words):
    with pytest.raises(RubricError, match=words.replace("[", r"\[").replace("]", r"\]")):
        rubric_from_dict(body, source="r.yaml")
