"""The JSON Schema, regex and Python unit-test verifiers, the factory, and the verifier judge over them.

The Python verifier's sandbox is tested by what a hostile candidate would try: an infinite loop, a 2 GB allocation,
a connection to a real listener on loopback, reading the parent's API key, early exits, writes outside its jail; and
that its scratch folder is gone afterwards. The full list of attacks on the jails is in test_python_jail.py.
"""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from rlaif.datasets import PromptRecord
from rlaif.evaluation import evaluate_outputs
from rlaif.judges.base import Comparison
from rlaif.judges.ranking import RankingTask, rank_candidates
from rlaif.judges.verifier import VerifierJudge
from rlaif.rubric import RubricError, rubric_from_dict
from rlaif.verifiers import (
    CRITERIA,
    VERIFIERS,
    VerifierOptionError,
    open_verifier,
    task_success,
    validate_options,
)
from rlaif.verifiers.json_schema import JsonSchemaOptions, JsonSchemaVerifier, json_equal
from rlaif.verifiers.python_jail import probe_backend
from rlaif.verifiers.python_tests import PythonTestsOptions, PythonTestsVerifier
from rlaif.verifiers.regex import RegexOptions, RegexVerifier

ORDER_SCHEMA = {
    "type": "object",
    "required": ["id", "items"],
    "properties": {
        "id": {"type": "integer"},
        "items": {"type": "array", "items": {"type": "object", "required": ["sku", "qty"],
                                             "properties": {"sku": {"type": "string"},
                                                            "qty": {"type": "integer", "minimum": 1}}}},
    },
    "additionalProperties": False,
}
ORDER = {"id": 7, "items": [{"sku": "A-1", "qty": 2}]}


def test_rubric_attaches_every_criterion_of_the_one_table_and_nothing_else():
    criteria = [{"name": name, "verifier": name} for names in CRITERIA.values() for name in names]
    assert len(rubric_from_dict({"name": "all", "criteria": criteria}).criteria) == 10
    with pytest.raises(RubricError, match="unknown verifier 'sql_runs'"):
        rubric_from_dict({"name": "typo", "criteria": [{"name": "r1", "verifier": "sql_runs"}]})


def test_every_kind_has_one_verifier_class_whose_results_carry_its_criteria(tmp_path):
    assert tuple(VERIFIERS) == tuple(CRITERIA) and all(VERIFIERS[k].kind == k for k in CRITERIA)
    with open_verifier("regex", {"pattern": "a+"}) as v:
        assert tuple(v.verify("aaa", None).criteria()) == CRITERIA["regex"]
    with open_verifier("python_tests", {"timeout_s": 5}, base_dir=tmp_path) as v:
        result = v.verify("def f():\n    return 1\n", "from solution import f\nassert f() == 1\n")
        assert tuple(result.criteria()) == CRITERIA["python_tests"]


# ---------------------------------------------------------------------------------------------------------------------
# JSON Schema


@pytest.fixture(scope="module")
def json_verifier():
    return JsonSchemaVerifier(JsonSchemaOptions(schema=ORDER_SCHEMA))


def test_json_passing_candidate_passes_every_criterion(json_verifier):
    # key order is free, and 7.0 is an integer both to Draft 2020-12 and to JSON equality
    result = json_verifier.verify(json.dumps({"items": [{"qty": 2, "sku": "A-1"}], "id": 7.0}), json.dumps(ORDER))
    assert result.criteria() == {"json_parses": True, "json_schema_valid": True, "json_matches_reference": True}
    result = json_verifier.verify(json.dumps(ORDER), json.dumps(ORDER))
    assert result.passed and result.error is None
    assert result.to_dict()["criteria"] == result.criteria()
    json.dumps(result.to_dict())  # stored as JSON


def test_json_fenced_block_is_used_when_the_whole_text_is_not_json(json_verifier):
    text = f"Here is the order:\n```json\n{json.dumps(ORDER)}\n```\nAnything else?"
    result = json_verifier.verify(text, json.dumps(ORDER))
    assert result.passed and result.details["source"] == "fence"


@pytest.mark.parametrize("text", ["not json", '{"id": 7,}', "NaN", '{"id": Infinity}', "[" * 50_000, ""])
def test_json_unparseable_candidates_fail_everything(json_verifier, text):
    result = json_verifier.verify(text, json.dumps(ORDER))
    assert result.criteria() == {"json_parses": False, "json_schema_valid": False, "json_matches_reference": False}
    assert result.error_kind == "parse"


def test_json_schema_errors_name_the_json_path(json_verifier):
    bad = {"id": "7", "items": [{"sku": "A-1", "qty": 0}], "extra": 1}
    result = json_verifier.verify(json.dumps(bad), json.dumps(ORDER))
    assert result.criteria() == {"json_parses": True, "json_schema_valid": False, "json_matches_reference": False}
    assert result.error_kind == "schema"
    assert "$.items[0].qty: 0 is less than the minimum of 1" in result.error
    assert "$.id: '7' is not of type 'integer'" in result.error
    assert result.details["schema_errors"] == 3


def test_json_equality_is_json_not_python():
    assert json_equal({"a": 1, "b": [1.0]}, {"b": [1], "a": 1})
    assert not json_equal(True, 1) and not json_equal([0], [False]) and not json_equal([1, 2], [2, 1])


def test_json_schema_per_prompt_in_an_envelope_or_as_the_reference():
    envelope = JsonSchemaVerifier()  # no options schema: references are {"schema": ..., "expected": ...}
    ref = json.dumps({"schema": {"type": "array", "maxItems": 2}, "expected": [1, 2]})
    assert envelope.verify("[1, 2]", ref).passed
    assert envelope.verify("[1, 2, 3]", ref).criteria() == {
        "json_parses": True, "json_schema_valid": False, "json_matches_reference": False}
    only_schema = envelope.verify("[1, 2, 3]", json.dumps({"schema": {"type": "array"}}))
    assert only_schema.criteria() == {"json_parses": True, "json_schema_valid": True}
    assert envelope.verify("[1]", "[1]").reference_error  # not an envelope

    per_prompt = JsonSchemaVerifier(JsonSchemaOptions(reference="schema"))
    assert per_prompt.verify('{"id": 1}', json.dumps(ORDER_SCHEMA)).criteria() == {
        "json_parses": True, "json_schema_valid": False}


def test_json_remote_refs_are_never_fetched():
    verifier = JsonSchemaVerifier(JsonSchemaOptions(reference="schema"))
    started = time.perf_counter()
    result = verifier.verify("{}", json.dumps({"$ref": "https://schemas.invalid/order.json"}))
    assert time.perf_counter() - started < 1.0
    assert result.criteria()["json_schema_valid"] is False
    assert "Unresolvable" in result.reference_error
    local = {"$defs": {"qty": {"type": "integer"}}, "properties": {"q": {"$ref": "#/$defs/qty"}}}
    assert verifier.verify('{"q": 1}', json.dumps(local)).passed


def test_json_options_are_validated(tmp_path):
    with pytest.raises(VerifierOptionError, match=r"verifier.options.shcema: unknown option \(did you mean 'schema'"):
        validate_options("json_schema", {"shcema": {}})
    with pytest.raises(VerifierOptionError, match="verifier.options.schema: not a valid Draft 2020-12 schema"):
        JsonSchemaVerifier(JsonSchemaOptions(schema={"type": "no-such-type"}))
    with pytest.raises(VerifierOptionError, match="verifier.options.reference"):
        JsonSchemaOptions(reference="schema", schema={"type": "object"})
    (tmp_path / "order.schema.json").write_text(json.dumps(ORDER_SCHEMA))
    with open_verifier("json_schema", {"schema_file": "order.schema.json"}, base_dir=tmp_path) as verifier:
        assert verifier.verify(json.dumps(ORDER), json.dumps(ORDER)).passed


# ---------------------------------------------------------------------------------------------------------------------
# regex


def test_regex_fullmatch_search_and_pattern_sources():
    with RegexVerifier(RegexOptions(pattern=r"\d{4}-\d{2}-\d{2}")) as verifier:
        assert verifier.verify("  2024-05-01\n", None).criteria() == {"regex_match": True}
        miss = verifier.verify("on 2024-05-01", None)
        assert miss.criteria() == {"regex_match": False} and miss.error_kind == "no_match"
    with RegexVerifier(RegexOptions(mode="search", flags=["IGNORECASE"])) as verifier:  # reference = pattern
        result = verifier.verify("The answer is YES.", r"\byes\b")
        assert result.passed and result.details["span"] == [14, 17]
        assert verifier.verify("x", "(").reference_error.startswith("the pattern is not a valid")


def test_regex_catastrophic_backtracking_times_out_and_the_worker_restarts():
    with RegexVerifier(RegexOptions(pattern=r"(a|aa)*b", timeout_s=0.3)) as verifier:
        started = time.perf_counter()
        result = verifier.verify("a" * 60, None)  # ~1.5e12 paths: would run for hours in-process
        assert time.perf_counter() - started < 2.0
        assert result.criteria() == {"regex_match": False} and result.error_kind == "timeout"
        assert verifier.verify("aab", None).passed
        assert verifier.restarts == 1


def test_regex_options_and_length_cap():
    with pytest.raises(VerifierOptionError, match="verifier.options.pattern: not a valid regular expression"):
        RegexOptions(pattern="(")
    with pytest.raises(VerifierOptionError, match="verifier.options.mode"):
        RegexOptions(mode="match_all")
    with RegexVerifier(RegexOptions(pattern=".*", max_chars=10)) as verifier:
        assert verifier.verify("x" * 11, None).error_kind == "too_large"


# ---------------------------------------------------------------------------------------------------------------------
# Python unit tests


ADD = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def py_verifier():
    return PythonTestsVerifier(PythonTestsOptions(timeout_s=5))


@pytest.mark.parametrize("tests", [
    "assert add(1, 2) == 3\n",  # module-level asserts (MBPP style)
    "from solution import add\n\ndef test_add():\n    assert add(2, 2) == 4\n\n"
    "def test_zero():\n    assert add(0, 0) == 0\n",
    "import unittest\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(1, 1), 2)\n",
])
def test_python_passing_candidate_in_every_test_style(py_verifier, tests):
    result = py_verifier.verify(f"Here you go:\n```python\n{ADD}```\n", tests)
    assert result.criteria() == {"py_compiles": True, "py_tests_pass": True}, result.to_dict()
    assert result.error_kind is None
    json.dumps(result.to_dict())


def test_python_failing_and_broken_candidates(py_verifier):
    tests = "def test_add():\n    assert add(1, 2) == 3\n"
    wrong = py_verifier.verify("def add(a, b):\n    return a - b\n", tests)
    assert wrong.criteria() == {"py_compiles": True, "py_tests_pass": False}
    assert wrong.error_kind == "test_failure" and "assert add(1, 2) == 3" in wrong.error
    syntax = py_verifier.verify("def add(a, b) return a", tests)
    assert syntax.criteria() == {"py_compiles": False, "py_tests_pass": False} and syntax.error_kind == "syntax"
    raising = py_verifier.verify("raise RuntimeError('boom')\n", tests)
    assert raising.criteria() == {"py_compiles": True, "py_tests_pass": False} and raising.error_kind == "import"
    assert py_verifier.verify(ADD, "def (").reference_error.startswith("the test code does not compile")
    assert py_verifier.verify(ADD, None).reference_error


@pytest.mark.parametrize("code", ["import os\nos._exit(0)\n", "import sys\nsys.exit(0)\n"])
def test_python_exiting_early_is_not_passing(py_verifier, code):
    result = py_verifier.verify(code, "assert True\n")
    assert result.criteria() == {"py_compiles": True, "py_tests_pass": False}


def test_python_timeout_kills_an_infinite_loop():
    verifier = PythonTestsVerifier(PythonTestsOptions(timeout_s=1.0))
    started = time.perf_counter()
    result = verifier.verify("def spin():\n    while True:\n        pass\n", "def test_spin():\n    spin()\n")
    assert time.perf_counter() - started < 3.0
    assert result.criteria() == {"py_compiles": True, "py_tests_pass": False}
    assert result.error_kind == "timeout"


def test_python_memory_limit_stops_a_2gb_allocation(py_verifier):
    code = "def grab():\n    return bytearray(2 * 1024 ** 3)\n"
    result = py_verifier.verify(code, "def test_grab():\n    assert len(grab()) == 2 * 1024 ** 3\n")
    assert result.criteria() == {"py_compiles": True, "py_tests_pass": False}
    assert result.error_kind == "memory" and "MemoryError" in result.error


def test_python_output_is_truncated_and_capped():
    verifier = PythonTestsVerifier(PythonTestsOptions(timeout_s=5, max_output_chars=100, max_output_bytes=4096))
    chatty = verifier.verify("print('x' * 3000)\n" + ADD, "assert add(1, 2) == 3\n")
    assert chatty.passed and "[truncated" in chatty.details["output"] and len(chatty.details["output"]) < 200
    flood = verifier.verify("print('x' * 100_000)\n", "assert True\n")
    assert not flood.passed and flood.error_kind == "output_limit"


def test_python_runs_in_a_private_work_dir_and_leaves_no_scratch(tmp_path):
    verifier = PythonTestsVerifier(PythonTestsOptions(timeout_s=5, tmp_root=str(tmp_path)))
    code = "import os\nprint('CWD=' + os.getcwd())\nopen('scratch.txt', 'w').write('ok')\n" + ADD
    result = verifier.verify(code, "assert add(1, 2) == 3\n")
    assert result.passed, result.to_dict()
    assert "CWD=/jail/work" in result.details["output"] and result.details["isolation"] in ("bwrap", "unshare")
    assert not list(tmp_path.iterdir())  # the host-side scratch folder is gone


def test_python_child_sees_no_secret_from_the_parent_environment(py_verifier, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-PARENTSECRET0000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-PARENTSECRET")
    code = "import os\nENV = dict(os.environ)\nprint(sorted(ENV))\n"
    tests = ("def test_env():\n    assert 'OPENAI_API_KEY' not in ENV and 'ANTHROPIC_API_KEY' not in ENV\n"
             "    assert not any('PARENTSECRET' in v for v in ENV.values())\n"
             "    assert 'PARENTSECRET' not in open('/proc/self/environ').read()\n")
    result = py_verifier.verify(code, tests)
    assert result.passed, result.to_dict()
    assert "PARENTSECRET" not in json.dumps(result.to_dict())


def test_python_jail_refuses_processes_writes_outside_and_signals(py_verifier, tmp_path):
    outside = tmp_path / "escaped.txt"
    for code in ("import subprocess\nsubprocess.run(['true'])\n", f"open({str(outside)!r}, 'w').write('x')\n",
                 f"import os, signal\nos.kill({os.getpid()}, signal.SIGTERM)\n",
                 "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n"):
        result = py_verifier.verify(code, "assert True\n")
        assert result.criteria() == {"py_compiles": True, "py_tests_pass": False}, code
        assert result.error_kind == "import", result.to_dict()
    assert not outside.exists()


@pytest.fixture
def listener():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server
    server.close()


def _accepted_anything(server: socket.socket) -> bool:
    server.settimeout(0.2)
    try:
        conn, _ = server.accept()
    except (BlockingIOError, socket.timeout):
        return False
    conn.close()
    return True


@pytest.mark.skipif(probe_backend("auto") is None, reason="no OS jail can be made here")
def test_python_network_is_an_empty_namespace(py_verifier, listener):
    port = listener.getsockname()[1]
    code = ("import socket\n\ndef reach(port):\n"
            "    with socket.create_connection(('127.0.0.1', port), timeout=2):\n        return 'connected'\n")
    result = py_verifier.verify(code, f"def test_reach():\n    assert reach({port}) == 'connected'\n")
    assert result.criteria() == {"py_compiles": True, "py_tests_pass": False}
    assert "ConnectionRefusedError" in result.error or "unreachable" in result.error, result.error
    assert not _accepted_anything(listener)


def test_python_control_the_listener_is_reachable_without_the_sandbox(listener):
    with socket.create_connection(listener.getsockname(), timeout=2):
        assert _accepted_anything(listener)


def test_python_options_are_validated():
    with pytest.raises(VerifierOptionError, match="verifier.options.isolation"):
        PythonTestsOptions(isolation="guard")
    with pytest.raises(VerifierOptionError, match="verifier.options.timeout_s: must be a number > 0"):
        validate_options("python_tests", {"timeout_s": 0})
    with pytest.raises(VerifierOptionError, match="verifier.options.module"):
        PythonTestsOptions(module="test_solution")
    validate_options("python_tests", None)  # no options section at all means the defaults, as an empty one does


# ---------------------------------------------------------------------------------------------------------------------
# factory, judge, evaluation


def test_open_verifier_every_kind(tmp_path):
    from tests.test_sql_sandbox import ALLOW, WAREHOUSE

    (tmp_path / "warehouse.sql").write_text(WAREHOUSE)
    sql_options = {"warehouse": "warehouse.sql", "allowed_relations": list(ALLOW), "timeout_s": 2}
    with open_verifier("sql", sql_options, base_dir=tmp_path) as verifier:
        ref = "SELECT region, revenue FROM v_revenue_by_region WHERE region = 'EU'"
        assert verifier.verify(ref + ";", ref).passed
    with open_verifier("regex", {"pattern": "yes|no"}, base_dir=tmp_path) as verifier:
        assert verifier.verify("yes", None).criteria() == {"regex_match": True}
    assert verifier._worker is None  # the worker process went with the context
    with open_verifier("python_tests", {"timeout_s": 5}, base_dir=tmp_path) as verifier:
        assert verifier.verify(ADD, "assert add(1, 2) == 3").passed
    with pytest.raises(VerifierOptionError, match="unknown verifier kind 'yaml'"):
        with open_verifier("yaml", {}, base_dir=tmp_path):
            pass
    with pytest.raises(VerifierOptionError, match="verifier.options.warehouse: file not found"):
        with open_verifier("sql", {**sql_options, "warehouse": "missing.sql"}, base_dir=tmp_path):
            pass


JSON_RUBRIC = rubric_from_dict({"name": "orders", "criteria": [
    {"name": "parses", "verifier": "json_parses", "hard": True},
    {"name": "valid", "verifier": "json_schema_valid", "hard": True},
    {"name": "exact", "verifier": "json_matches_reference", "weight": 2.0},
]})


def test_verifier_judge_over_json_schema_ranks_valid_over_invalid(json_verifier):
    judge = VerifierJudge(json_verifier.verify)
    valid = json.dumps({"id": 8, "items": [{"sku": "B", "qty": 1}]})  # valid, but not the expected order
    exact = json.dumps(ORDER)
    invalid = json.dumps({"id": 7, "items": [{"sku": "A-1", "qty": 0}]})
    garbage = "I cannot produce JSON."
    (verdict,) = judge.compare([Comparison("order?", invalid, valid, json.dumps(ORDER))], JSON_RUBRIC)
    assert verdict.winner == "b" and "json_schema_valid" in verdict.rationale
    task = RankingTask("order?", [invalid, garbage, exact, valid], json.dumps(ORDER))
    (ranking,) = rank_candidates(judge, [task], JSON_RUBRIC, "round_robin")
    assert (ranking.chosen, ranking.rejected) == (2, 1)
    assert ranking.scores[3] > ranking.scores[0]


def test_evaluation_reads_the_new_verifiers_unchanged(json_verifier):
    prompts = [PromptRecord("p1", "order?", json.dumps(ORDER)), PromptRecord("p2", "order?", json.dumps(ORDER))]
    result = evaluate_outputs([(json.dumps(ORDER), 10), ("nope", 1)], prompts, verify=json_verifier.verify,
                              rubric=JSON_RUBRIC)
    assert result.metric("verifier_pass_rate") == 0.5
    assert result.rows[0]["checks"]["json_matches_reference"] is True
    assert [task_success(r["checks"]) for r in result.rows] == [True, False]
    assert task_success({"json_parses": True, "json_schema_valid": False}) is False
    assert task_success({"sql_executes": True, "sql_result_matches": True}) is True and task_success({}) is None
