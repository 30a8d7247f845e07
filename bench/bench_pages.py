"""How fast the Browse page reruns with a million pairs in the store, against the same page on an empty store.

A Streamlit page reruns on every click, so a rerun must stay interactive (target: under 1 s) however large the store
grows. This builds a store with N pairs (bulk inserts of 100k through ``store.pairs.add_many``), then times full
AppTest reruns of the Browse page, started from app.py, in four states: the default view (all runs), a filtered view
(one run, dropped pairs, one drop reason), the next keyset page of that view, and a text search in it. Each state is
measured on the big store and on an empty one; the ratio shows what the million rows cost.

    .venv/bin/python bench/bench_pages.py            # 1,000,000 pairs
    .venv/bin/python bench/bench_pages.py --pairs 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from streamlit import config as st_config  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from rlaif.workbench.stores import close_stores, open_store  # noqa: E402
from tests.workbench_fixtures import pair_rows, seed_run  # noqa: E402

RUNS = 10  # the pairs are spread over this many runs, one iteration each


def build_store(path: Path, n_pairs: int, chunk: int = 100_000) -> float:
    store = open_store(path)
    started = time.perf_counter()
    per_run = max(1, n_pairs // RUNS)
    for r in range(RUNS):
        run_id = seed_run(store, f"run-{r:02d}", pairs=0)
        done = 0
        while done < per_run:
            size = min(chunk, per_run - done)
            store.pairs.add_many(pair_rows(run_id, 1, size, start=done))
            done += size
    return time.perf_counter() - started


def time_browse(store_path: Path, repeat: int) -> dict[str, float]:
    """Median seconds of a full rerun (router + sidebar + Browse page) per state."""
    os.environ["RLAIF_STORE"] = str(store_path)
    st_config.set_option("server.address", "127.0.0.1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/browse.py").run()
    assert not at.exception, at.exception

    def measure() -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - started)
            assert not at.exception, at.exception
        return statistics.median(times)

    results = {"default view": measure()}
    runs = at.selectbox(key="b.run").options
    if len(runs) > 1:
        at.selectbox(key="b.run").set_value(at.session_state["workbench"].store.runs.list()[0]["run_id"]).run()
        next(s for s in at.selectbox if s.label == "Kept").set_value(False).run()
        reason = next(s for s in at.selectbox if s.label == "Drop reason")
        if "tie" in reason.options:
            reason.set_value("tie").run()
    results["one run, dropped, one reason"] = measure()
    nxt = next(b for b in at.button if b.label == "Next ›")
    if not nxt.disabled:
        nxt.click().run()
    results["next keyset page"] = measure()
    at.text_input(key="b.search").set_value("orders where id = 4242").run()  # a substring scan over every text
    results["text search in that view"] = measure()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="reruns per state (median reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        big, empty = Path(tmp) / "big.duckdb", Path(tmp) / "empty.duckdb"
        print(f"building a store with {args.pairs:,} pairs ...", flush=True)
        build_s = build_store(big, args.pairs)
        print(f"  built in {build_s:.1f} s ({open_store(big).pairs.count():,} pairs)")
        open_store(empty)
        t_big = time_browse(big, args.repeat)
        t_empty = time_browse(empty, args.repeat)
        close_stores()
    print(f"\nBrowse page rerun, median of {args.repeat} (AppTest, full app rerun):")
    print(f"{'state':<32} {'1M store' if args.pairs == 1_000_000 else f'{args.pairs:,} pairs':>12} "
          f"{'empty store':>12} {'ratio':>8}")
    worst = 0.0
    for state in t_big:
        worst = max(worst, t_big[state])
        print(f"{state:<32} {t_big[state] * 1000:>10.0f} ms {t_empty[state] * 1000:>9.0f} ms "
              f"{t_big[state] / t_empty[state]:>7.2f}x")
    print(f"\nslowest rerun with {args.pairs:,} pairs: {worst * 1000:.0f} ms "
          f"({'under' if worst < 1.0 else 'OVER'} the 1 s target)")
    return 0 if worst < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
