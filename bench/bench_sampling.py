"""Sampling throughput: in process (one prompt at a time, batched, batched length-sorted) and on an inference server
(the ``server`` backend: a managed ``transformers serve``, sequential and with continuous batching).

Same policy, prompts, candidates per prompt, temperatures and max_new_tokens for every mode, in one run, on this
machine's device (CPU here). Reports candidates/s and new tokens/s per mode, the ratios to one-at-a-time, and the
server rows against the in-process length-sorted batched path. Greedy decoding is also compared sorted vs unsorted
(the answers must be the same: only padding changes) and server vs in process (the same prompt text is fed).

Server rows: "transformers serve" is the loop's managed server (one request generated at a time, per-request
temperature and seed honoured); "serve --continuous-batching" (one server) is measured for its throughput only: in
transformers 5.24 its worker keeps the first request's sampling settings for every later request, so its row is not a
correct temperature ladder. "CB, a server per setting" is the loop's ``continuous_batching: true`` mode
(``rlaif.serving.per_setting``): one continuous-batching server per temperature (and a greedy one), each primed with
its own setting, requests routed to their setting's server, ``--per-setting-concurrency`` in flight per server; a
correct ladder, without per-request seeds. Each server runs with ``--server-threads`` OpenMP threads; the client sends
``--server-concurrency`` requests at once.

    .venv/bin/python bench/bench_sampling.py [--prompts 48] [--n 2] [--batch-size 16] [--max-new-tokens 48]
        [--server-concurrency 1,4] [--cb-concurrency 16,48] [--per-setting-concurrency 48] [--server-threads 1]
        [--no-server]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rlaif.policy import _batches, configure_cpu_threads, greedy, load_policy, quiet_library_progress, sample_candidates  # noqa: E402
from rlaif.sample_prompts import SAMPLE_DIR, read_jsonl  # noqa: E402
from rlaif.serving.client import CompletionClient  # noqa: E402
from rlaif.serving.generator import ServerGenerator, transformers_generation_config  # noqa: E402
from rlaif.serving.managed import continuous_batching_args, free_port, is_healthy, root_of, server_command  # noqa: E402
from rlaif.serving.options import ServerOptions  # noqa: E402
from rlaif.serving.per_setting import RoutedClient, SettingServers  # noqa: E402

PROMPT_TEMPLATE = "Question: {prompt}\nSQL: "


def measure(policy, prompts, *, n: int, batch_size: int, max_new_tokens: int, length_sorted: bool) -> dict:
    started = time.perf_counter()
    out = sample_candidates(policy, prompts, n=n, temperatures=[0.7, 1.0], seed=0, iteration=1,
                            batch_size=batch_size, max_new_tokens=max_new_tokens, length_sorted=length_sorted)
    seconds = time.perf_counter() - started
    tokens = sum(s.n_tokens for row in out for s in row)
    return {"seconds": seconds, "candidates_s": n * len(prompts) / seconds, "tokens_s": tokens / seconds,
            "tokens": tokens}


def start_server(model: str, threads: int, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """A ``transformers serve`` on ``model`` (preloaded), on a free loopback port; (process, base_url)."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(server_command("transformers", model, port, ["--device", "cpu", *extra]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while not is_healthy(root_of(url)):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise SystemExit(f"transformers serve {' '.join(extra)} did not come up")
        time.sleep(0.25)
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def measure_server(policy, url: str | None, prompts, *, n: int, concurrency: int, max_new_tokens: int,
                   client=None) -> dict:
    """The server backend's ``sample_candidates`` (one request per candidate) against ``url`` (or ``client``)."""
    client = client or CompletionClient([url], concurrency=concurrency, max_retries=0, timeout_s=600)
    gen = ServerGenerator(client, policy, model=policy.path, engine="transformers",
                          generation_config=transformers_generation_config(policy.path, policy.tokenizer),
                          seeds_honoured=not isinstance(client, RoutedClient))
    gen.sample_candidates(prompts[:2], ["w0", "w1"], n=2, temperatures=[0.7, 1.0], seed=0, iteration=0,
                          max_new_tokens=4)  # warm-up (per setting: starts and primes its servers)
    started = time.perf_counter()
    out = gen.sample_candidates(prompts, [str(k) for k in range(len(prompts))], n=n, temperatures=[0.7, 1.0],
                                seed=0, iteration=1, max_new_tokens=max_new_tokens)
    seconds = time.perf_counter() - started
    tokens = sum(s.n_tokens for row in out for s in row)
    return {"seconds": seconds, "candidates_s": n * len(prompts) / seconds, "tokens_s": tokens / seconds,
            "tokens": tokens, "generator": gen}


def server_modes(policy, prompts, args) -> tuple[dict, list]:
    """The server rows, and the sequential server's greedy answers (to compare with in-process greedy)."""
    modes, greedy_served = {}, []
    # the single CB server gets the loop's cache sizes too: left alone it takes ~14 GB of host RAM on CPU
    for label, extra, levels in (("transformers serve", [], args.server_concurrency),
                                 ("serve --continuous-batching", continuous_batching_args([]), args.cb_concurrency)):
        proc, url = start_server(policy.path, args.server_threads, extra)
        try:
            for c in levels:
                modes[f"{label} c={c}"] = measure_server(policy, url, prompts, n=args.n, concurrency=c,
                                                         max_new_tokens=args.max_new_tokens)
            if not extra and levels:
                greedy_served = modes[f"{label} c={levels[0]}"]["generator"].greedy(
                    prompts, max_new_tokens=args.max_new_tokens)
        finally:
            stop_server(proc)
    if args.per_setting_concurrency:
        options = ServerOptions(engine="transformers", continuous_batching=True, cpu_threads=args.server_threads,
                                concurrency=args.per_setting_concurrency, extra_args=["--device", "cpu"],
                                max_retries=0, request_timeout_s=600)
        servers = SettingServers(policy.path, options, log_dir=Path(args.log_dir))
        try:
            label = f"CB, a server per setting c={args.per_setting_concurrency}"
            modes[label] = measure_server(policy, None, prompts, n=args.n, concurrency=0,
                                          max_new_tokens=args.max_new_tokens, client=RoutedClient(servers, options))
            greedy_per_setting = modes[label]["generator"].greedy(prompts, max_new_tokens=args.max_new_tokens)
            modes[label]["greedy"] = greedy_per_setting
            modes[label]["servers"] = len(servers.servers)
        finally:
            servers.stop()
    return modes, greedy_served


def padding(policy, prompts, batch_size: int, length_sorted: bool) -> int:
    lengths = [len(policy.tokenizer(policy.render(p), add_special_tokens=False)["input_ids"]) for p in prompts]
    batches = _batches(policy, prompts, batch_size, length_sorted)
    return sum(max(lengths[j] for j in b) - lengths[k] for b in batches for k in b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=str(SAMPLE_DIR / "policy"))
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--n", type=int, default=2, help="candidates per prompt")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--server-concurrency", type=_levels, default=[1, 4], help="requests at once, sequential server")
    ap.add_argument("--cb-concurrency", type=_levels, default=[16, 48], help="requests at once, continuous batching")
    ap.add_argument("--per-setting-concurrency", type=int, default=48,
                    help="requests at once per server, a CB server per sampling setting (0: skip that row)")
    ap.add_argument("--log-dir", default="/tmp/bench_sampling_servers", help="the per-setting servers' logs")
    ap.add_argument("--server-threads", type=int, default=1, help="OMP_NUM_THREADS of the server process")
    ap.add_argument("--no-server", action="store_true", help="in-process rows only")
    args = ap.parse_args()

    configure_cpu_threads()
    quiet_library_progress()
    policy = load_policy(args.policy, prompt_template=PROMPT_TEMPLATE)
    prompts = [r["prompt"] for r in read_jsonl(SAMPLE_DIR / "train.jsonl")[:args.prompts]]
    print(f"policy {args.policy} on {policy.device.name}; {len(prompts)} prompts x {args.n} candidates, "
          f"max_new_tokens {args.max_new_tokens}, batch size {args.batch_size}")
    sample_candidates(policy, prompts[:2], n=1, temperatures=[1.0], seed=0, iteration=0, batch_size=2,
                      max_new_tokens=4)  # warm-up: first-call allocations are not throughput
    kw = dict(n=args.n, max_new_tokens=args.max_new_tokens)
    modes = {
        "one prompt at a time": measure(policy, prompts, batch_size=1, length_sorted=False, **kw),
        "batched (prompt order)": measure(policy, prompts, batch_size=args.batch_size, length_sorted=False, **kw),
        "batched (length-sorted)": measure(policy, prompts, batch_size=args.batch_size, length_sorted=True, **kw),
    }
    greedy_served = []
    if not args.no_server:
        served, greedy_served = server_modes(policy, prompts, args)
        modes.update(served)
    base, batched = modes["one prompt at a time"], modes["batched (length-sorted)"]
    print(f"{'mode':34} {'seconds':>8} {'cand/s':>8} {'new tok/s':>10} {'new tok':>8} {'x cand/s':>9} {'x tok/s':>8} "
          f"{'batched/this':>12}")
    for name, m in modes.items():
        print(f"{name:34} {m['seconds']:8.2f} {m['candidates_s']:8.1f} {m['tokens_s']:10.1f} {m['tokens']:8d} "
              f"{m['candidates_s'] / base['candidates_s']:9.2f} {m['tokens_s'] / base['tokens_s']:8.2f} "
              f"{batched['seconds'] / m['seconds']:12.2f}")
    print("batched/this: in-process length-sorted batched seconds / this mode's seconds (>= 0.67 means at most "
          "1.5x slower than in-process batched)")
    sorted_m, plain_m = modes["batched (length-sorted)"], modes["batched (prompt order)"]
    print(f"length-sorted vs prompt order: {sorted_m['tokens_s'] / plain_m['tokens_s']:.2f}x new tok/s; prompt "
          f"padding tokens {padding(policy, prompts, args.batch_size, False)} -> "
          f"{padding(policy, prompts, args.batch_size, True)}")
    a = greedy(policy, prompts, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    b = greedy(policy, prompts, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, length_sorted=True)
    print(f"greedy answers identical sorted vs prompt order: {sum(x == y for x, y in zip(a, b))}/{len(a)}")
    if greedy_served:
        print(f"greedy answers identical server vs in process: {sum(x == y for x, y in zip(a, greedy_served))}"
              f"/{len(a)}")
    for name, m in modes.items():
        if "greedy" in m:
            print(f"greedy answers identical {name} (its greedy server) vs in process: "
                  f"{sum(x == y for x, y in zip(a, m['greedy']))}/{len(a)}; servers started: {m['servers']}")


def _levels(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


if __name__ == "__main__":
    main()
