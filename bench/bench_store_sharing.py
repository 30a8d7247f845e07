"""What opening the store on demand costs a run, and what it gives everyone else: both measured in the same run.

A run's store traffic comes in bursts (a stage writes its rows, then the loop samples or trains for a long while).
This replays that shape: ``--bursts`` bursts of ``--writes`` small transactions and as many reads, separated by idle
gaps longer than the store's linger time. It runs twice on a fresh file: once with the connection held for the whole
run (the old behaviour: ``linger_s`` = infinity) and once opened on demand (the default). For each it prints the
time spent in store calls, and the share of probes by another process (``duckdb.connect`` every 20 ms) that found
the file free. The ratio line is the price: store-call time on demand / held open.

    .venv/bin/python bench/bench_store_sharing.py
    .venv/bin/python bench/bench_store_sharing.py --bursts 20 --writes 200 --gap 0.5
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from store import Store  # noqa: E402
from store.db import DEFAULT_LINGER_S  # noqa: E402

PROBE = r"""
import sys, time, duckdb
path, stop = sys.argv[1], sys.argv[2]
free = busy = 0
import os
while not os.path.exists(stop):
    try:
        duckdb.connect(path).close()
        free += 1
    except duckdb.IOException:
        busy += 1
    time.sleep(0.02)
print(free, busy)
"""


def scenario(path: Path, linger_s: float, bursts: int, writes: int, gap: float) -> tuple[float, float]:
    """(seconds inside store calls, share of another process's probes that found the file free)."""
    store = Store(path, linger_s=linger_s, wait_s=120)
    stop = path.with_suffix(".stop")
    probe = subprocess.Popen([sys.executable, "-c", PROBE, str(path), str(stop)], stdout=subprocess.PIPE, text=True)
    in_calls = 0.0
    try:
        for b in range(bursts):
            started = time.perf_counter()
            for w in range(writes):
                run_id = f"r{b}-{w}"
                store.runs.create(run_id, "bench", {"burst": b}, "h", "stub", None, None, None)
                store.runs.get(run_id)
            in_calls += time.perf_counter() - started
            time.sleep(gap)  # the loop samples or trains: no store traffic
    finally:
        store.close()
        stop.touch()
        free, busy = map(int, probe.communicate(timeout=60)[0].split())
    return in_calls, free / max(1, free + busy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--writes", type=int, default=100, help="transactions (and as many reads) per burst")
    parser.add_argument("--gap", type=float, default=1.0, help="idle seconds between bursts (> linger)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        held, held_free = scenario(Path(tmp) / "held.duckdb", float("inf"), args.bursts, args.writes, args.gap)
        shared, shared_free = scenario(Path(tmp) / "shared.duckdb", DEFAULT_LINGER_S, args.bursts, args.writes,
                                       args.gap)
    calls = args.bursts * args.writes * 2
    print(f"{args.bursts} bursts x {args.writes} writes + {args.writes} reads, {args.gap:g} s idle between bursts")
    print(f"held open : {held:.2f} s in store calls ({held / calls * 1e3:.2f} ms/call), "
          f"file free for another process {held_free:.0%} of probes")
    print(f"on demand : {shared:.2f} s in store calls ({shared / calls * 1e3:.2f} ms/call), "
          f"file free for another process {shared_free:.0%} of probes (linger {DEFAULT_LINGER_S:g} s)")
    print(f"ratio on-demand / held-open store-call time: {shared / held:.2f}x")


if __name__ == "__main__":
    main()
