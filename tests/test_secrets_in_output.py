"""Key-shaped model output is redacted and counted, never a reason to fail a run; real keys from the environment
never reach a table, a manifest file or the command's output; configs carrying a key are still refused.

The policy here is a fake (fixed completions through the loop's sampling and decoding functions) and training is a
fake that returns the base model, so a whole loop runs in seconds; judge, verifier, pairs and store are real.
"""

import logging

import pytest

from rlaif.cli import main
from rlaif.loop import stages
from rlaif.policy import Sample, model_hash
from rlaif.training import TrainResult
from store import Store
from store.secrets_guard import redact_output, redact_rows, refuse_secrets
from tests.test_cli import tiny_config
from tests.test_pipeline import make_config, run_all, tiny  # noqa: F401  (fixture)

LOOKALIKE = "sk-proj-abcdefghijklmnopqrstuvwx"  # what a policy can print: key-shaped, nobody's key


class FakePolicyOutput:
    """The loop's sampling/decoding/training functions, answering with fixed texts (recorded in ``history``)."""

    def __init__(self, candidates: list[str], answer: str):
        self.candidates, self.answer, self.history = candidates, answer, []

    def sample_candidates(self, policy, prompts, *, n, temperatures, seed, iteration, **kw):
        self.history.append(("sample", len(prompts)))
        return [[Sample(k, i, self.candidates[i % len(self.candidates)], float(temperatures[0]), i, 5)
                 for i in range(n)] for k in range(len(prompts))]

    def greedy(self, policy, prompts, **kw):
        self.history.append(("greedy", len(prompts)))
        return [(self.answer, 5) for _ in prompts]

    def train(self, model_path, rows, cfg, out_dir, iteration, **kw):
        self.history.append(("train", [(r["chosen"], r["rejected"]) for r in rows]))
        return TrainResult(model_path, model_hash(model_path), 1, 0.5, True)

    def install(self, monkeypatch):
        for name in ("sample_candidates", "greedy", "train"):
            monkeypatch.setattr(stages, name, getattr(self, name))
        return self


def test_a_key_shaped_completion_is_redacted_and_counted_and_the_run_completes(tiny, tmp_path, monkeypatch,
                                                                                 caplog):
    fake = FakePolicyOutput([LOOKALIKE, f"SELECT 1 -- {LOOKALIKE}", "SELECT 2"], answer=LOOKALIKE).install(monkeypatch)
    cfg = make_config(tiny, tmp_path, loop={"iterations": 1})
    caplog.set_level(logging.WARNING, logger="rlaif.loop.pipeline")
    with Store(":memory:") as store:
        pipe, results = run_all(cfg, store)
        run_id = pipe.run_id
        assert store.runs.get(run_id)["status"] == "completed" and [r.iteration for r in results] == [0, 1]

        texts = {c["text"] for c in store.candidates.list(run_id)}
        assert texts == {"[redacted]", "SELECT 1 -- [redacted]", "SELECT 2"}
        assert all(LOOKALIKE not in str(c["verification"]) for c in store.candidates.list(run_id))
        pairs = store.pairs.page(run_id=run_id, limit=100)
        assert pairs and all(LOOKALIKE not in f"{p['chosen']}{p['rejected']}" for p in pairs)
        assert {o["output"] for o in store.eval_outputs.for_iteration(run_id, 0).values()} == {"[redacted]"}

        # the count reaches the iteration's result and its manifest (stored and on disk)
        assert results[0].redacted == 6  # six eval answers
        assert results[1].redacted >= 24  # 16 candidate texts + their verifier echoes + pairs + eval answers
        for r in results:
            assert r.manifest["redacted_model_output"] == r.redacted
            assert store.manifests.get(r.manifest["manifest_id"])["body"]["redacted_model_output"] == r.redacted
        assert f"iteration 1: {results[1].redacted} key-shaped strings redacted from model output" in caplog.text
        # DPO trained on exactly what the store kept (redacted), so the manifest's dataset hash is recomputable
        trained = [pairs for step, pairs in fake.history if step == "train"][0]
        assert trained and all(LOOKALIKE not in c + r for c, r in trained)


@pytest.fixture
def planted_keys(monkeypatch):
    """Real-looking keys in the environment: one key-shaped, one that is not (caught by its value, not its shape)."""
    keys = {"OPENAI_API_KEY": "opensesame-0123456789-plain", "ANTHROPIC_API_KEY": "sk-ant-api03-" + "x1" * 20}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    return keys


def test_environment_keys_in_model_output_never_reach_the_store_files_or_output(planted_keys, tmp_path,
                                                                                 monkeypatch, capsys, caplog):
    leak = " ".join(planted_keys.values())
    FakePolicyOutput([f"SELECT 1 -- {leak}", "SELECT 2", LOOKALIKE], answer=f"my key is {leak}").install(monkeypatch)
    config, store_path = tiny_config(tmp_path), tmp_path / "s.duckdb"
    caplog.set_level(logging.DEBUG)
    code = main(["--store", str(store_path), "run", str(config), "--judge", "stub", "--iterations", "1",
                 "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "key-shaped strings redacted from model output" in out

    dump = tmp_path / "dump"
    with Store(store_path) as store:
        run = store.runs.list()[0]
        assert run["status"] == "completed"
        store.cursor().execute(f"EXPORT DATABASE '{dump}' (FORMAT csv)")
    written = [p.read_text(errors="replace") for p in [*dump.rglob("*"), *(tmp_path / "runs").rglob("*")]
               if p.is_file()]
    assert any("[redacted]" in text for text in written)  # the export holds the redacted rows...
    for key in planted_keys.values():  # ...and no key anywhere: tables, manifests, stdout, stderr, logs
        assert all(key not in text for text in written)
        assert key not in out and key not in err and key not in caplog.text
    assert all(LOOKALIKE not in text for text in written)


def test_configs_and_params_keep_refusing_secrets_naming_the_field(planted_keys, tmp_path):
    with Store(":memory:") as store:
        with pytest.raises(ValueError, match=r"config\.judge\.api_key"):
            store.runs.create("r1", "leaky", {"judge": {"api_key": "sk-whatever-0123456789abcdef"}}, "h", "stub",
                              None, None, None)
        # an environment key pasted into a config is refused whatever its shape
        with pytest.raises(ValueError, match=r"job\.params\.judge\.base_url"):
            store.jobs.create("run_loop", {"judge": {"base_url": f"http://h/?k={planted_keys['OPENAI_API_KEY']}"}})
        assert store.runs.get("r1") is None and store.jobs.list() == []


def test_redaction_counts_each_string_and_leaves_ordinary_text_alone(planted_keys):
    value = {"sql": LOOKALIKE, "notes": ["Bearer abcdefgh12345678 and sk-learn", "plain"],
             "api_key": "anything", "ok": None}
    redacted, n = redact_output(value)
    assert n == 3 and redacted == {"sql": "[redacted]", "notes": ["[redacted] and sk-learn", "plain"],
                                   "api_key": "[redacted]", "ok": None}
    assert value["sql"] == LOOKALIKE  # the input is not modified
    rows, n = redact_rows([{"text": "SELECT 1"}, {"text": f"x {planted_keys['OPENAI_API_KEY']} y"}], ("text",))
    assert n == 1 and rows == [{"text": "SELECT 1"}, {"text": "x [redacted] y"}]
    refuse_secrets({"verification": redacted}, "candidates")  # a redacted value stores no secret
