"""Benchmark: the SQL sandbox's worker processes under the bomb list, and what a worker costs a normal query.

Two measurements in one run, on the sample warehouse (``sample_data/harbor_sql``):

1. **Bombs.** Every attack of ``tests/test_sql_bombs.py`` (resource bombs and escape tricks) runs under the limits
   (default 2 s and 1024 MB, the limits the audit used); printed: how many were contained (a failed verdict), the
   worst wall time, the peak memory of any worker (``RUSAGE_CHILDREN`` for the killed ones, ``VmHWM`` of the live
   ones) and how far this process's own peak RSS rose.
2. **Overhead.** The eval set's golden queries, several rounds, through the sandbox (a pipe round trip to a pooled
   worker, JSON both ways) and through an in-process hardened read-only connection on the same materialised file
   doing what the sandbox used to do (structural check cached per text, ``execute``, ``fetchmany``). The ratio is
   the worker's cost per query.

    .venv/bin/python bench/bench_sql_worker.py [--timeout-s 2] [--memory-mb 1024] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlaif.verifiers.sql_parse import analyse_statement  # noqa: E402
from rlaif.verifiers.sql_sandbox import SqlSandbox, duckdb_memory_limit, hardened_config  # noqa: E402
from tests.test_sql_bombs import BOMBS, TRICKS  # noqa: E402

SAMPLE = ROOT / "sample_data" / "harbor_sql"


def _status_kb(field: str, pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def bombs(sb: SqlSandbox, canary: Path) -> bool:
    attacks = [(name, sql) for name, sql, _ in BOMBS] + [(name, sql.format(d=canary)) for name, sql in TRICKS]
    base_kb = _status_kb("VmRSS")
    _reset_peak()
    worst_s, worst_name, contained, kinds = 0.0, "", 0, {}
    worker_peak_kb = 0
    for name, sql in attacks:
        start = time.perf_counter()
        res = sb.execute(sql, enforce_allowlist=False)
        wall = time.perf_counter() - start
        if wall > worst_s:
            worst_s, worst_name = wall, name
        contained += not res.ok
        kinds[res.error_kind] = kinds.get(res.error_kind, 0) + 1
        for pid in sb.worker_pids:  # live workers; killed ones show up in RUSAGE_CHILDREN
            worker_peak_kb = max(worker_peak_kb, _status_kb("VmHWM", pid))
    reaped_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    worker_peak_kb = max(worker_peak_kb, reaped_kb)
    parent_growth_mb = (_status_kb("VmHWM") - base_kb) / 1024
    limit_s = sb.timeout_s
    print(f"bombs: {len(attacks)} attacks ({len(BOMBS)} resource/size bombs, {len(TRICKS)} escape tricks) under "
          f"{limit_s:g} s / {sb.memory_mb} MB per worker")
    print(f"  contained: {contained}/{len(attacks)}  verdicts: "
          + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items(), key=lambda kv: str(kv[0]))))
    print(f"  worst wall time: {worst_s:.2f} s ({worst_name}); limit {limit_s:g} s + kill grace {sb.kill_grace_s:g} s")
    print(f"  peak worker RSS: {worker_peak_kb / 1024:.0f} MB (address-space limit {sb.memory_mb} MB)")
    print(f"  this process's peak RSS rose by {parent_growth_mb:.0f} MB; workers replaced: {sb.worker_restarts}")
    return contained == len(attacks) and worst_s < limit_s + 3.0


def overhead(sb: SqlSandbox, queries: list[str], rounds: int, memory_limit: str) -> None:
    conn = duckdb.connect(sb.db_path, read_only=True,
                          config=hardened_config(timeout_s=sb.timeout_s, memory_limit=memory_limit, threads=2))
    cache: dict[str, object] = {}

    def in_process(sql: str):
        cur = conn.cursor()
        try:
            analysis = cache.get(sql)
            if analysis is None:
                analysis = cache[sql] = analyse_statement(cur, sql, sb.facts)
            cur.execute(sql)
            return cur.fetchmany(sb.max_rows + 1)
        finally:
            cur.close()

    worker_s: list[float] = []
    local_s: list[float] = []
    mismatches = 0
    for _ in range(rounds):
        for sql in queries:
            start = time.perf_counter()
            res = sb.execute(sql, enforce_allowlist=False)
            worker_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            rows = in_process(sql)
            local_s.append(time.perf_counter() - start)
            mismatches += not (res.ok and [tuple(r) for r in rows] == res.rows)
    conn.close()
    w_med, l_med = statistics.median(worker_s), statistics.median(local_s)
    w_mean, l_mean = statistics.fmean(worker_s), statistics.fmean(local_s)
    print(f"overhead: {len(queries)} golden queries x {rounds} rounds (first round parses, later rounds hit the "
          f"per-text caches); results identical: {'yes' if mismatches == 0 else f'NO ({mismatches} differ)'}")
    print(f"  worker process: median {w_med * 1000:.2f} ms, mean {w_mean * 1000:.2f} ms per query")
    print(f"  in-process:     median {l_med * 1000:.2f} ms, mean {l_mean * 1000:.2f} ms per query")
    print(f"  ratio worker / in-process: {w_med / l_med:.2f}x median, {w_mean / l_mean:.2f}x mean "
          f"(+{(w_med - l_med) * 1000:.2f} ms per query)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout-s", type=float, default=2.0)
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    allow = [line.strip() for line in (SAMPLE / "allowlist.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    queries = [json.loads(line)["reference"] for line in (SAMPLE / "eval.jsonl").read_text().splitlines() if line]
    start = time.perf_counter()
    sb = SqlSandbox(SAMPLE / "warehouse.sql", allow, timeout_s=args.timeout_s, memory_mb=args.memory_mb)
    print(f"sandbox with one worker ready in {(time.perf_counter() - start) * 1000:.0f} ms "
          f"(warehouse build + worker start)")
    canary = Path(tempfile.mkdtemp(prefix="bench-sql-canary-"))  # a folder the attacks name; nothing may change
    (canary / "secret.csv").write_text("column0\ntop-secret\n")
    (canary / "secret.json").write_text('{"pin": "top-secret"}\n')
    try:
        overhead(sb, queries, args.rounds, duckdb_memory_limit(None, args.memory_mb))
        ok = bombs(sb, canary)
        untouched = sorted(p.name for p in canary.iterdir()) == ["secret.csv", "secret.json"]
        print(f"  canary folder untouched: {'yes' if untouched else 'NO'}")
    finally:
        sb.close()
        shutil.rmtree(canary, ignore_errors=True)
    return 0 if ok and untouched else 1


if __name__ == "__main__":
    sys.exit(main())
