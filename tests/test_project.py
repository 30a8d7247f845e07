"""The project assembly is the one place a config becomes its parts, and every caller gets the same parts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rlaif.cli import main
from rlaif.config import ConfigError, config_from_dict
from rlaif.judges import JUDGE_NAMES
from rlaif.judges.cache import CachedJudge
from rlaif.judges.registry import KINDS
from rlaif.loop import Project
from rlaif.loop.project import judge_options
from rlaif.workbench.projects import estimate_run_cost, project_judge, spends_api
from store import Store

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "harbor_sql"
TWO_ROWS = "SELECT region FROM v_revenue_by_region WHERE year = 2024 AND quarter = 1 LIMIT 2;"


def sql_config(**over):
    data = {"rubric": "rubric.yaml", "verifier": {"kind": "sql", "warehouse": "warehouse.sql",
                                                  "allowed_relations": ["v_revenue_*"], "options": {"max_rows": 1}},
            "judge": {"name": "verifier"}, **over}
    return config_from_dict(data, base_dir=SAMPLE)


def test_the_verifier_gets_every_option_of_its_kind():
    """``max_rows`` lives only in the SQL verifier's options class; the project passes it through (two callers used
    to build the sandbox by hand and drop it)."""
    with Project.from_config(sql_config()).open_verifier() as verifier:
        result = verifier.verify(TWO_ROWS, TWO_ROWS)
    assert result.error_kind == "too_many_rows" and not result.criteria()["sql_executes"]


def test_kappa_and_the_workbench_judge_through_the_same_verifier(tmp_path, capsys):
    """``rlaif kappa --config`` and the workbench build the project's verifier with all its options: with
    ``max_rows: 0`` every golden query fails, the verifier judge can only call ties, and the gate sees it."""
    def kappa(max_rows: int | None) -> float:
        cfg = (SAMPLE / "loop.yaml").read_text()
        if max_rows is not None:
            cfg = cfg.replace("timeout_s: 2.0", f"timeout_s: 2.0\n  options: {{max_rows: {max_rows}}}")
        path = tmp_path / f"loop-{max_rows}.yaml"
        path.write_text(cfg)
        for name in ("warehouse.sql", "rubric.yaml", "anchors.jsonl", "train.jsonl", "eval.jsonl"):
            (tmp_path / name).write_bytes((SAMPLE / name).read_bytes())
        db = str(tmp_path / f"s-{max_rows}.duckdb")
        assert main(["--store", db, "anchors", "import", str(SAMPLE / "anchors.jsonl")]) == 0
        main(["--store", db, "kappa", "--judge", "verifier", "--rubric", str(SAMPLE / "rubric.yaml"), "--config",
              str(path), "--annotators", "oracle", "--resamples", "100", "--json"])
        return json.loads(capsys.readouterr().out.split("\n", 1)[1])["kappa"]

    assert kappa(None) == pytest.approx(1.0)
    assert kappa(0) < 0.72
    with project_judge(sql_config(), "verifier") as judge:  # the workbench's judge: max_rows 1 held
        assert not judge.checks(TWO_ROWS, TWO_ROWS)["sql_executes"]


def test_judge_specs_are_checked_when_the_config_loads():
    with pytest.raises(ConfigError, match=r"judge\.options\.model: is required"):
        sql_config(judge={"name": "openai"})
    with pytest.raises(ConfigError, match=r"judge\.options\.concurrency: expected int"):
        sql_config(judge={"name": "anthropic", "options": {"model": "m", "concurrency": "8"}})
    with pytest.raises(ConfigError, match=r"eval_judge\.options\.judges\[1\]\.options\.modle: unknown option"):
        sql_config(eval_judge={"name": "ensemble", "options": {"judges": ["stub", {"name": "openai", "options": {
            "modle": "gpt-4o"}}]}})
    with pytest.raises(ConfigError, match=r"judge\.name: unknown judge 'gemini'"):
        sql_config(judge={"name": "gemini"})
    with pytest.raises(ConfigError, match=r"^eval_judge\.name: unknown judge 'gemini'"):
        sql_config(eval_judge={"name": "gemini"})
    with pytest.raises(ConfigError, match=r"^eval_judge\.options\.api_key: secrets are read from the environment"):
        sql_config(eval_judge={"name": "openai", "options": {"model": "m", "api_key": "sk-x"}})


def test_every_kind_owns_a_documented_options_class():
    assert tuple(KINDS) == JUDGE_NAMES
    for name, kind in KINDS.items():
        assert kind.name == name and dataclasses.is_dataclass(kind.Options)
        assert all(f.metadata.get("help") for f in dataclasses.fields(kind.Options)), name


def test_expensive_kinds_are_cached_in_the_loop_unless_the_config_says_no(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-key-1234567890abcdef")
    api = {"name": "anthropic", "options": {"model": "claude-haiku-4-5"}}
    with Store(":memory:") as store:
        with Project.from_config(sql_config(judge=api)).open(store, cache_expensive=True) as parts:
            assert isinstance(parts.judge, CachedJudge)
        no_cache = {"name": "anthropic", "options": {"model": "claude-haiku-4-5", "cache": False}}
        with Project.from_config(sql_config(judge=no_cache)).open(store, cache_expensive=True) as parts:
            assert not isinstance(parts.judge, CachedJudge)
        with Project.from_config(sql_config()).open(store, cache_expensive=True) as parts:
            assert not isinstance(parts.judge, CachedJudge)  # the verifier judge is free and instant


def test_another_judge_name_gets_its_own_defaults_not_the_configs_options(monkeypatch):
    cfg = sql_config(judge={"name": "anthropic", "options": {"model": "claude-haiku-4-5", "budget_usd": 1.0}},
                     eval_judge={"name": "openai", "options": {"model": "gpt-4o-mini"}})
    project = Project.from_config(cfg)
    assert project.judge_spec().options.budget_usd == 1.0
    assert project.judge_spec("openai").options.model == "gpt-4o-mini"  # the eval judge's options
    assert project.judge_spec("stub").name == "stub"
    # the one rule `rlaif run --judge NAME` applies too: the options the config gives that name, else none
    assert judge_options(cfg, "openai") == {"model": "gpt-4o-mini"} and judge_options(cfg, "stub") == {}
    assert judge_options(cfg, "anthropic")["budget_usd"] == 1.0
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert spends_api(cfg) and not spends_api(cfg, "verifier")
    cost = estimate_run_cost(cfg, 282)
    assert cost.judge_calls == 3 * 282 * 6 and cost.judge.usd > 0 and "anthropic:claude-haiku-4-5" in cost.note


def test_a_command_that_measures_one_judge_does_not_build_the_eval_judge(tmp_path, monkeypatch, capsys):
    """The eval judge is an API judge whose key is not set: measuring the verifier judge (kappa, the workbench)
    must not need it; the loop, which uses both, says the key is missing."""
    from rlaif.judges.llm_api import MissingAPIKeyError

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    cfg = sql_config(eval_judge={"name": "anthropic", "options": {"model": "claude-haiku-4-5"}})
    with Store(":memory:") as store:
        with Project.from_config(cfg).open(store, judge="verifier") as parts:
            assert parts.judge.judge_id.startswith("verifier") and parts.eval_judge is None
        with project_judge(cfg, "verifier", store=store) as judge:
            assert judge.judge_id.startswith("verifier")
        with pytest.raises(MissingAPIKeyError):
            with Project.from_config(cfg).open(store, with_eval_judge=True):
                pass
    config = tmp_path / "loop.yaml"
    body = json.loads(json.dumps(cfg.to_dict()))
    body["calibration"] = {"anchor_set": str(SAMPLE / "anchors.jsonl"), "annotators": "oracle"}
    body["verifier"]["warehouse"] = str(SAMPLE / "warehouse.sql")
    body["rubric"] = str(SAMPLE / "rubric.yaml")
    body["verifier"]["options"] = {}
    config.write_text(json.dumps(body), encoding="utf-8")
    assert main(["--store", str(tmp_path / "k.duckdb"), "kappa", "--judge", "verifier", "--config", str(config),
                 "--resamples", "100"]) == 0
    assert "GATE PASSED" in capsys.readouterr().out


def test_device_cuda_without_cuda_names_the_field():
    import torch

    from rlaif.policy import select_device

    if torch.cuda.is_available():  # the GPU machine: cuda is what it gets
        assert select_device("cuda").name == "cuda"
    else:
        with pytest.raises(ConfigError, match=r"^policy\.device: is cuda but no CUDA device is available here"):
            select_device("cuda")
