import pytest

from rlaif.config import ConfigError, RunConfig, config_from_dict, describe_fields, load_config


def test_defaults_are_valid_and_hash_is_stable():
    a, b = RunConfig(), RunConfig()
    assert a.config_hash() == b.config_hash()
    b.training.beta = 0.2
    assert a.config_hash() != b.config_hash()


def test_output_dir_does_not_change_the_config_hash():
    a, b = RunConfig(), RunConfig(output_dir="elsewhere")
    assert a.config_hash() == b.config_hash()


@pytest.mark.parametrize("data, field, words", [
    ({"training": {"beta": -1}}, "training.beta", "> 0"),
    ({"training": {"learnig_rate": 1e-3}}, "training.learnig_rate", "did you mean 'learning_rate'"),
    ({"training": {"loss_type": ["sigmoid", "bogus"]}}, "training.loss_type[1]", "unknown loss"),
    ({"sampling": {"candidates_per_prompt": 1}}, "sampling.candidates_per_prompt", ">= 2"),
    ({"sampling": {"temperatures": [0.7, "hot"]}}, "sampling.temperatures", "expected"),
    ({"loop": {"iterations": "three"}}, "loop.iterations", "expected int"),
    ({"loop": {"primary_metric": "bleu"}}, "loop.primary_metric", "must be one of"),
    ({"verifier": {"kind": "sql"}}, "verifier.warehouse", "required"),
    ({"judge": {"name": "openai", "options": {"api_key": "sk-x"}}}, "judge.options.api_key", "environment"),
    ({"policy": {"prompt_template": "no placeholder"}}, "policy.prompt_template", "{prompt}"),
    ({"bogus": 1}, "bogus", "unknown field"),
])
def test_invalid_config_names_field_and_problem(data, field, words):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert info.value.field_path == field
    assert words in str(info.value)


def test_yaml_file_errors_name_the_file(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("training:\n  beta: 0\n")
    with pytest.raises(ConfigError, match=r"loop\.yaml: training\.beta"):
        load_config(path)
    path.write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    path = tmp_path / "sub" / "loop.yaml"
    path.parent.mkdir()
    path.write_text("policy:\n  path: model\ntraining:\n  learning_rate: 5e-4\n  loss_type: [sigmoid, sft]\n")
    cfg = load_config(path)
    assert cfg.resolve(cfg.policy.path) == tmp_path / "sub" / "model"
    assert cfg.training.learning_rate == pytest.approx(5e-4)
    assert cfg.training.loss_type == ["sigmoid", "sft"]


def test_every_field_has_help():
    rows = describe_fields()
    assert rows and all(help_text for _, help_text, _ in rows)
    assert any(path == "training.loss_type" for path, _, _ in rows)
