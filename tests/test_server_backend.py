"""The server generation backend end to end: real ``transformers serve`` processes on loopback serving the sample's
tiny policy, the loop sampling and evaluating through them in managed mode (the loop starts and stops the server) and
in external mode (two servers, requests spread across both, each new checkpoint handed over by naming its folder),
and the ways a run ends early: cancelled during sampling, and a server killed under it. No fake server.

What transformers serve 5.24 honours (read in ``transformers/cli/serving``, checked here): ``max_tokens``,
``temperature`` (0 = greedy), ``top_p``, ``seed`` (torch is seeded globally when the request arrives, so reproducible
one request at a time) and a request's ``generation_config``, which the backend sends because a model whose own
config lacks ``do_sample`` is otherwise decoded greedily at any temperature. It ignores ``n``; ``model`` may name a
local folder, which the server then loads (that is the external handover). ``--continuous-batching`` keeps the first
request's sampling settings for all later ones, so the backend refuses it as an extra argument and offers
``continuous_batching: true`` instead: one continuous-batching server per sampling setting, each primed with its own
setting (``rlaif.serving.per_setting``); its tests check that the temperatures really differ, that greedy equals
in-process greedy, and that every one of its servers stops with the loop (run end, killed loop).

Why it is quick enough (~2.5-3 min on 2 shared cores; each managed start is 5-20 s of it): servers run with one
OpenMP thread; the external pair is started once for the module and serves four tests; prompts and candidates are
few. vLLM is not installed here: its paths (``vllm serve``, handover by ``restart_command``) are exercised only as far
as the restart command and health wait go. Marked ``slow``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rlaif.config import load_config
from rlaif.datasets import load_prompts
from rlaif.loop.pipeline import RLAIFPipeline
from rlaif.loop.project import Project
from rlaif.loop.stages import RunCancelled
from rlaif.policy import greedy
from rlaif.serving import ServerError, candidate_seed
from rlaif.serving.managed import free_port, is_healthy
from store import Store
from tests.workbench_fixtures import SAMPLE, write_project

SERVE = Path(sys.executable).parent / "transformers"
POLICY = SAMPLE / "policy"
MANAGED = {"mode": "managed", "engine": "transformers", "cpu_threads": 1, "extra_args": ["--device", "cpu"],
           "max_retries": 1, "request_timeout_s": 60, "startup_timeout_s": 180}

MANAGED_CB = {**MANAGED, "continuous_batching": True, "concurrency": 16}

TEMPERATURES = [1.5, 2.0]
CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")

pytestmark = pytest.mark.slow


def gone(pid: int) -> bool:
    """The process no longer runs (a zombie nobody reaped yet counts as gone: it runs nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    """Two ``transformers serve`` processes with no model preloaded, as an operator runs them on two nodes: each
    request's ``model`` names the folder to serve. Yields [(base_url, log path)]."""
    folder = tmp_path_factory.mktemp("servers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    procs, servers = [], []
    try:
        for k in range(2):
            port, log = free_port(), folder / f"server-{k}.log"
            with open(log, "wb") as out:
                procs.append(subprocess.Popen([str(SERVE), "serve", "--host", "127.0.0.1", "--port", str(port),
                                               "--device", "cpu"], stdout=out, stderr=subprocess.STDOUT, env=env,
                                              start_new_session=True))
            servers.append((f"http://127.0.0.1:{port}/v1", log))
        deadline = time.monotonic() + 180
        for proc, (url, log) in zip(procs, servers):
            while not is_healthy(url.removesuffix("/v1")):
                assert proc.poll() is None, f"transformers serve exited: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"transformers serve not healthy: {log.read_text()[-2000:]}"
                time.sleep(0.5)
        yield servers
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def project_config(tmp_path: Path, server: dict, **sampling) -> Path:
    """The tiny project (4 train and 4 eval prompts, 2 candidates, stub judge) on the sample policy, sampling on
    servers. Hot temperatures: the sample policy is so sure of itself that at 0.7/0.9 both candidates are often the
    same text, and identical candidates make no pair."""
    path = write_project(tmp_path / "project", POLICY, prompts=4, judge="stub")
    cfg = yaml.safe_load(path.read_text())
    cfg["sampling"].update(backend="server", server=server, temperatures=TEMPERATURES, **sampling)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_loop(config: Path, store: Store, **kwargs) -> tuple[RLAIFPipeline, list]:
    cfg = load_config(config)
    pipeline = RLAIFPipeline(cfg, store=store, **kwargs)
    train, eval = load_prompts(cfg.resolve(cfg.data.train)), load_prompts(cfg.resolve(cfg.data.eval))
    return pipeline, list(pipeline.run(train, eval))


def assert_candidates_seeded(store: Store, run_id: str, seed: int = 0) -> None:
    rows = store.candidates.list(run_id, iteration=1)
    assert len(rows) == 4 * 2
    for row in rows:
        assert row["seed"] == candidate_seed(seed, 1, row["sample_index"], row["prompt_id"]), row
        assert row["temperature"] == TEMPERATURES[row["sample_index"]] and row["n_tokens"] > 0


# ---------------------------------------------------------------------------------------------------------------------
# the server sees exactly what in-process generation feeds the model


def test_server_greedy_equals_in_process_greedy_and_seeds_reproduce(two_servers, tmp_path):
    url, _ = two_servers[0]
    cfg = load_config(project_config(tmp_path, {"mode": "external", "base_urls": [url], "max_retries": 0}))
    project = Project.from_config(cfg)
    generator = project.generator()
    assert generator.engine == "transformers"  # asked from the server itself (engine: auto)
    prompts = [p.prompt for p in load_prompts(cfg.resolve(cfg.data.eval))][:4]
    served = generator.greedy(prompts, max_new_tokens=16)
    in_process = greedy(project.load_policy(), prompts, batch_size=4, max_new_tokens=16)
    assert served == in_process  # same text and same new-token count: the prompt is rendered identically
    ids = [f"p{k}" for k in range(len(prompts))]
    ladder = dict(n=2, temperatures=[1.3], seed=0, iteration=1, max_new_tokens=16)
    first = generator.sample_candidates(prompts, ids, **ladder)
    again = generator.sample_candidates(prompts, ids, **ladder)
    assert [[s.text for s in row] for row in first] == [[s.text for s in row] for row in again]
    assert [s.seed for row in first for s in row] == [candidate_seed(0, 1, i, ids[k])
                                                      for k in range(len(prompts)) for i in range(2)]
    sampled = {s.text for row in first for s in row}  # temperature 1.3 really samples (not greedy)
    assert sampled - {text for text, _ in served}


def test_chat_mode_sends_messages_the_server_renders_with_the_same_template(two_servers, tmp_path):
    import shutil

    from rlaif.policy import load_tokenizer

    model = tmp_path / "chat-policy"
    shutil.copytree(POLICY, model)
    tok = load_tokenizer(model)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(model)
    config = project_config(tmp_path, {"mode": "external", "base_urls": [two_servers[1][0]], "max_retries": 0})
    cfg = yaml.safe_load(config.read_text())
    cfg["policy"].update(path=str(model), prompt_format="chat", prompt_template="{prompt}", system_prompt="SQL only.")
    config.write_text(yaml.safe_dump(cfg))
    project = Project.from_config(load_config(config))
    generator = project.generator()
    prompts = [p.prompt for p in load_prompts(project.config.resolve(project.config.data.eval))][:3]
    request = generator._request(prompts[0], temperature=0.0, seed=None, max_tokens=8, top_p=1.0)
    assert request.messages == [{"role": "system", "content": "SQL only."}, {"role": "user", "content": prompts[0]}]
    served = generator.greedy(prompts, max_new_tokens=12)
    assert served == greedy(project.load_policy(), prompts, batch_size=3, max_new_tokens=12)
    assert all(n > 0 for _, n in served)  # something was generated, not two empty answers


# ---------------------------------------------------------------------------------------------------------------------
# one loop iteration, managed and external


def test_one_iteration_on_a_managed_server(tmp_path):
    config = project_config(tmp_path, MANAGED)
    pids: set[int] = set()
    with Store(str(tmp_path / "s.duckdb")) as store:
        cfg = load_config(config)
        pipeline = RLAIFPipeline(cfg, store=store)
        pipeline.progress = lambda event: pids.add(pipeline.project.managed_server.pid) \
            if pipeline.project.managed_server is not None else None
        results = list(pipeline.run(load_prompts(cfg.resolve(cfg.data.train)),
                                    load_prompts(cfg.resolve(cfg.data.eval))))
        assert [r.iteration for r in results] == [0, 1], store.runs.get(pipeline.run_id)
        assert store.runs.get(pipeline.run_id)["status"] == "completed"
        assert_candidates_seeded(store, pipeline.run_id)
        generation = results[1].manifest["generation"]
        assert generation["backend"] == "server" and generation["server"]["mode"] == "managed"
        assert generation["server"]["engine"] == "transformers" and generation["server"]["version"]
        assert generation["sampling"]["temperatures"] == TEMPERATURES
        assert results[1].manifest["seeds"]["sampling"].startswith("sha256(base:iteration:sample_index:prompt_id)")
        assert results[1].model_path != results[0].model_path  # iteration 1 evaluated its own checkpoint
    # a server for the base policy (baseline eval, iteration 1's sampling), one for the checkpoint; none left
    assert len(pids) == 2 and all(gone(pid) for pid in pids)
    assert pipeline.project.managed_server is None


def test_one_iteration_on_two_external_servers(two_servers, tmp_path):
    before = [log.read_text().count("[Request received]") for _, log in two_servers]
    config = project_config(tmp_path, {"mode": "external", "base_urls": [url for url, _ in two_servers],
                                       "concurrency": 2, "max_retries": 1})
    with Store(str(tmp_path / "s.duckdb")) as store:
        pipeline, results = run_loop(config, store)
        assert [r.iteration for r in results] == [0, 1] and store.runs.get(pipeline.run_id)["status"] == "completed"
        assert_candidates_seeded(store, pipeline.run_id)
        server = results[1].manifest["generation"]["server"]
        assert server["mode"] == "external" and server["engine"] == "transformers"
        assert all(n > 0 for n in server["requests_per_url"].values()), server
    # both servers answered, and the new checkpoint reached them by name (handover: model_path)
    logs = [log.read_text() for _, log in two_servers]
    assert all(log.count("[Request received]") > n for log, n in zip(logs, before))
    checkpoint = results[1].model_path
    assert any(f"Model: {checkpoint}" in log for log in logs), checkpoint


def test_restart_command_handover_runs_once_per_checkpoint_and_fails_in_one_line(two_servers, tmp_path):
    """handover: restart_command (vLLM's way): the command gets the checkpoint, the servers' health is awaited,
    requests name the checkpoint; a failing command is one line naming the field. (Here the "restart" only
    records its argument: the transformers server already loads any folder it is asked for.)"""
    import shutil

    checkpoint = tmp_path / "iteration-01" / "model"
    shutil.copytree(POLICY, checkpoint)
    marker = tmp_path / "restarts.txt"
    server = {"mode": "external", "engine": "transformers", "base_urls": [two_servers[0][0]],
              "handover": "restart_command", "restart_command": f"sh -c 'echo {{checkpoint}} >> {marker}'"}
    project = Project.from_config(load_config(project_config(tmp_path, server)))
    project.generator()  # the base policy: what the servers were started on, nothing to restart
    assert not marker.exists()
    generator = project.generator(checkpoint)
    project.generator(checkpoint)  # the same checkpoint again: no second restart
    assert marker.read_text().split() == [str(checkpoint)] and generator.model == str(checkpoint)
    assert generator.greedy(["How many orders in 2024?"], max_new_tokens=4)[0][1] > 0

    server["restart_command"] = "sh -c 'echo no such node >&2; exit 3' {checkpoint}"
    failing = Project.from_config(load_config(project_config(tmp_path / "failing", server)))
    with pytest.raises(ServerError) as err:
        failing.generator(checkpoint)
    assert err.value.field_path == "sampling.server.restart_command" and "no such node" in str(err.value)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------------------------------
# ending early: cancel, a killed server


@pytest.mark.parametrize("server", [MANAGED, MANAGED_CB], ids=["sequential", "continuous-batching"])
def test_cancel_during_sampling_stops_the_managed_server(tmp_path, server):
    config = project_config(tmp_path, server)
    seen: list[int] = []
    with Store(str(tmp_path / "s.duckdb")) as store:
        cfg = load_config(config)
        pipeline = RLAIFPipeline(cfg, store=store)

        def cancel_while_sampling(event):
            if pipeline.project.managed_server is not None:
                seen.extend(pipeline.project.managed_server.pids)
            if event.stage == "sample" and pipeline.project.managed_server is not None:
                pipeline.cancel.set()

        pipeline.progress = cancel_while_sampling
        with pytest.raises(RunCancelled):
            list(pipeline.run(load_prompts(cfg.resolve(cfg.data.train)), load_prompts(cfg.resolve(cfg.data.eval))))
        assert store.runs.get(pipeline.run_id)["status"] == "cancelled"
        assert store.candidates.count(pipeline.run_id, iteration=1) == 0  # nothing half-sampled was stored
    # continuous batching: the baseline's greedy server and one server per temperature, all stopped
    assert len(set(seen)) == (1 + len(TEMPERATURES) if server.get("continuous_batching") else 1), seen
    assert all(gone(pid) for pid in seen) and pipeline.project.managed_server is None


def test_a_killed_server_fails_the_run_in_one_line_and_leaves_nothing_running(tmp_path):
    config = project_config(tmp_path, MANAGED)
    killed: list[int] = []
    with Store(str(tmp_path / "s.duckdb")) as store:
        cfg = load_config(config)
        pipeline = RLAIFPipeline(cfg, store=store)

        def kill_while_sampling(event):
            server = pipeline.project.managed_server
            if event.stage == "sample" and server is not None and not killed:
                killed.append(server.pid)
                os.killpg(server.pid, signal.SIGKILL)

        pipeline.progress = kill_while_sampling
        with pytest.raises(ServerError) as err:
            list(pipeline.run(load_prompts(cfg.resolve(cfg.data.train)), load_prompts(cfg.resolve(cfg.data.eval))))
        run = store.runs.get(pipeline.run_id)
        assert run["status"] == "failed" and "\n" not in run["error"]
        assert "sampling.server" in run["error"] and "failed on every server" in str(err.value)
    assert killed and gone(killed[0]) and pipeline.project.managed_server is None


def test_server_options_are_checked_by_field(tmp_path):
    from rlaif.core.fields import ConfigError

    for server, field in (({"mode": "external"}, "sampling.server.base_urls"),
                          ({"base_urls": ["http://127.0.0.1:1/v1"]}, "sampling.server.base_urls"),
                          ({"mode": "external", "base_urls": ["127.0.0.1:8000"]}, "sampling.server.base_urls[0]"),
                          ({"handover": "restart_command"}, "sampling.server.restart_command"),
                          ({"engine": "transformers", "extra_args": ["--continuous-batching"]},
                           "sampling.server.extra_args"),
                          ({"mode": "external", "base_urls": ["http://127.0.0.1:1/v1"], "continuous_batching": True},
                           "sampling.server.continuous_batching"),
                          ({"engine": "vllm", "continuous_batching": True}, "sampling.server.continuous_batching"),
                          ({"extra_args": ["--port", "1", "--api-key", "sk-abc"]}, "sampling.server.extra_args[2]"),
                          ({"extra_args": ["--hf-token=hf_abc"]}, "sampling.server.extra_args[0]")):
        with pytest.raises(ConfigError) as err:
            load_config(project_config(tmp_path, server))
        assert err.value.field_path == field, err.value
    # flags that merely mention tokens are no secret
    load_config(project_config(tmp_path, {"extra_args": ["--max-num-batched-tokens", "512", "--cb-max-batch-tokens",
                                                          "512"]}))
    # the default backend is untouched: in process, the loaded policy
    cfg = load_config(write_project(tmp_path / "plain", POLICY, prompts=4))
    assert cfg.sampling.backend == "transformers"
    assert type(Project.from_config(cfg).generator()).__name__ == "Policy"


def test_a_managed_server_dies_with_a_killed_loop(tmp_path):
    """A SIGKILLed loop runs no cleanup; the guard (PR_SET_PDEATHSIG) still stops its server."""
    script = (f"import time; from pathlib import Path; from rlaif.serving import ManagedServer, ServerOptions\n"
              f"opts = ServerOptions(engine='transformers', cpu_threads=1, extra_args=['--device', 'cpu'])\n"
              f"server = ManagedServer({str(POLICY)!r}, opts, log_dir=Path({str(tmp_path)!r})).start()\n"
              f"print(server.pid, flush=True); time.sleep(600)")
    loop = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        pid = int(loop.stdout.readline())
        assert not gone(pid)
    finally:
        loop.kill()
        loop.wait()
    deadline = time.monotonic() + 30
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gone(pid)


# ---------------------------------------------------------------------------------------------------------------------
# continuous batching: one server per sampling setting


def requests_received(log: Path) -> int:
    return log.read_text(errors="replace").count("[Request received]")


def test_continuous_batching_servers_sample_at_their_own_setting(tmp_path):
    """The bug this mode exists for: one CB server applies its first request's settings to all. Here greedy goes to
    the greedy server first (it would fix a single server to greedy) and must still equal in-process greedy; then
    temperature 1.3 must really sample (answers unlike greedy, more varied than at 0.7), each request on the
    server of its own setting."""
    project = Project.from_config(load_config(project_config(tmp_path, MANAGED_CB)))
    prompts = [p.prompt for p in load_prompts(project.config.resolve(project.config.data.eval))][:8]
    ids = [f"p{k}" for k in range(len(prompts))]
    try:
        generator = project.generator()
        served = generator.greedy(prompts, max_new_tokens=16)
        assert served == greedy(project.load_policy(), prompts, batch_size=8, max_new_tokens=16)
        ladder = dict(n=6, seed=0, iteration=1, max_new_tokens=16)
        hot = generator.sample_candidates(prompts, ids, temperatures=[1.3], **ladder)
        warm = generator.sample_candidates(prompts, ids, temperatures=[0.7], **ladder)
        servers = project.managed_server
        pids = servers.pids
        assert len(pids) == 3 and all(not gone(pid) for pid in pids)  # greedy, 1.3, 0.7: side by side
        logs = {server.label: server.log_path for server in servers.servers.values()}
        assert set(logs) == {"greedy", "t1.3", "t0.7"}
        # each server answered its priming request and exactly the requests of its setting
        assert {k: requests_received(v) for k, v in logs.items()} == {"greedy": 1 + 8, "t1.3": 1 + 48, "t0.7": 1 + 48}
    finally:
        project.release_generator()
    # the sample policy is sure of itself: ~1 in 5 answers at 1.3 leave greedy (none from a greedy-fixed server; the
    # chance that all 48 stay greedy by luck is ~1e-5)
    unlike_greedy = sum(s.text != served[k][0] for k, row in enumerate(hot) for s in row)
    assert unlike_greedy >= 1, [[s.text for s in row] for row in hot]
    assert sum(len({s.text for s in row}) for row in hot) > sum(len({s.text for s in row}) for row in warm)
    assert all(s.temperature == 1.3 and s.seed is None and s.n_tokens > 0 for row in hot for s in row)
    assert all(gone(pid) for pid in pids) and project.managed_server is None


def test_one_iteration_with_continuous_batching_leaves_no_server(tmp_path):
    config = project_config(tmp_path, MANAGED_CB)
    pids: set[int] = set()
    with Store(str(tmp_path / "s.duckdb")) as store:
        cfg = load_config(config)
        pipeline = RLAIFPipeline(cfg, store=store)
        pipeline.progress = lambda event: pids.update(pipeline.project.managed_server.pids) \
            if pipeline.project.managed_server is not None else None
        results = list(pipeline.run(load_prompts(cfg.resolve(cfg.data.train)),
                                    load_prompts(cfg.resolve(cfg.data.eval))))
        assert [r.iteration for r in results] == [0, 1] and store.runs.get(pipeline.run_id)["status"] == "completed"
        rows = store.candidates.list(pipeline.run_id, iteration=1)
        assert len(rows) == 4 * 2 and all(r["seed"] is None and r["n_tokens"] > 0 for r in rows)
        assert sorted({r["temperature"] for r in rows}) == TEMPERATURES
        server = results[1].manifest["generation"]["server"]
        assert server["seeds_honoured"] is False and "--continuous-batching" in server["command"]
        assert server["continuous_batching"] and server["requests"] > 0
        assert results[1].manifest["seeds"]["sampling"].startswith("none")  # no seed rule is claimed
    # greedy on the base policy, then one server per temperature, then greedy on the checkpoint: none left
    assert len(pids) >= 3 and all(gone(pid) for pid in pids), pids
    assert pipeline.project.managed_server is None


def test_continuous_batching_servers_die_with_a_killed_loop(tmp_path):
    """Servers started side by side are each launched from the loop's thread, so each one's guard fires."""
    script = (f"import time; from pathlib import Path\n"
              f"from rlaif.serving import ServerOptions, SettingServers\n"
              f"from rlaif.serving.client import Request\n"
              f"opts = ServerOptions(engine='transformers', cpu_threads=1, extra_args=['--device', 'cpu'], "
              f"continuous_batching=True)\n"
              f"servers = SettingServers({str(POLICY)!r}, opts, log_dir=Path({str(tmp_path)!r}))\n"
              f"firsts = {{str(t): Request({str(POLICY)!r}, t, 4, prompt='Question: x\\nSQL: ') for t in (0.0, 1.0)}}\n"
              f"servers.ensure(firsts, lambda: False)\n"
              f"print(*servers.pids, flush=True); time.sleep(600)")
    loop = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        pids = [int(x) for x in loop.stdout.readline().split()]
        assert len(pids) == 2 and not any(gone(pid) for pid in pids)
    finally:
        loop.kill()
        loop.wait()
    deadline = time.monotonic() + 30
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(gone(pid) for pid in pids)
