"""Build the SQL sample's anchor set, ``sample_data/harbor_sql/anchors.jsonl``, labelled by the execution oracle.

Why an oracle and not people: the sample must demo the calibration gate offline, and text-to-SQL correctness is
objective. Each pair puts candidate SQL for a training question side by side (the golden query, a verbose but correct
variant with an explanatory ``--`` comment, and realistic mistakes: a wrong year/region/product value, the wrong
view, the raw ``raw_orders`` table, broken syntax, a dropped filter). The production verifier (the loop config's, via
the project assembly: ``SqlVerifier`` on a sandbox of ``warehouse.sql``) executes both and compares them with the golden result; the label is stored
in the column ``label_oracle:sql-execution``, i.e. annotator ``oracle:sql-execution`` of kind ``oracle``, never a
person. Human labels added later are kept apart and are what the gate uses with ``annotators: human``.

The pairs are designed so that length and correctness disagree as often as they agree: correct-but-shorter vs
wrong-but-longer, the reverse, and correct-vs-correct ties of different length. So the verifier judge agrees with
the oracle (kappa about 1) and the verbosity-biased judge (prefers the longer answer) does not (kappa far below 0.72).
Deterministic: no randomness besides sha256 of the prompt ids; running it twice writes the same bytes.

    .venv/bin/python scripts/build_sample_anchors.py            # writes sample_data/harbor_sql/anchors.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlaif.config import load_config  # noqa: E402
from rlaif.loop.project import Project  # noqa: E402

SAMPLE = ROOT / "sample_data" / "harbor_sql"
ORACLE = "oracle:sql-execution"
PER_TEMPLATE = 8
YEARS = (2021, 2022, 2023, 2024, 2025)
REGIONS = ("North", "South", "East", "West", "Central")
PRODUCTS = ("Anchor", "Beacon", "Compass", "Lantern", "Mariner", "Pilot", "Rudder", "Sextant")
OTHER_VIEW = {"v_revenue_by_region": "v_revenue_monthly", "v_revenue_monthly": "v_revenue_by_region",
              "v_revenue_by_product": "v_revenue_by_region"}
# the pair recipes, in a fixed cycle of 20: 30% correct-short vs wrong-long, 15% correct-short vs raw-table-long,
# 25% correct-long vs wrong-short, 10% correct-short vs broken-long, 5% correct-long vs broken-short, 15% ties
PLAN = ("value_long", "terse_wrong", "value_long", "raw_long", "tie_verbose", "terse_wrong", "view_long",
        "broken_long", "terse_wrong", "raw_long", "value_long", "tie_verbose", "terse_wrong", "view_long",
        "broken_short", "raw_long", "value_long", "terse_wrong", "tie_verbose", "broken_long")


def _h(*parts) -> int:
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _view(sql: str) -> str:
    return re.search(r"\bFROM\s+(\w+)", sql).group(1)


def _filters(sql: str) -> str:
    where = re.search(r"\bWHERE\s+(.*?)(?:\s+GROUP BY|\s+ORDER BY|\s+LIMIT|;|$)", sql, re.S)
    return where.group(1).replace(" AND ", ", ") if where else "no filters"


def explain(sql: str, key: str) -> str:
    """An explanatory comment in the voice of the SQL assistant (stating its own filters, right or wrong)."""
    view, filters = _view(sql), _filters(sql)
    phrasing = (f"-- Filters: {filters}. Reads the approved view {view}.",
                f"-- Assumptions: {filters}; the figure comes from {view}, so no raw tables are touched.",
                f"-- I filtered on {filters} and used {view}, which already aggregates the orders.")
    return phrasing[_h("explain", key) % len(phrasing)]


def wrong_value(sql: str, key: str) -> str | None:
    """The same query with one filter value changed (the most common real mistake)."""
    for pattern, values in ((r"year = (\d{4})", YEARS), (r"region = '(\w+)'", REGIONS),
                            (r"product = '(\w+)'", PRODUCTS), (r"quarter = (\d)", (1, 2, 3, 4))):
        match = re.search(pattern, sql)
        if match:
            current = match.group(1)
            options = [str(v) for v in values if str(v) != current]
            replacement = options[_h("value", key) % len(options)]
            return sql[: match.start(1)] + replacement + sql[match.end(1):]
    return None


def wrong_view(sql: str) -> str:
    view = _view(sql)
    return sql.replace(view, OTHER_VIEW.get(view, "v_revenue_by_region"), 1)


def raw_table(sql: str) -> str:
    year = re.search(r"year = (\d{4})", sql)
    condition = f" WHERE year(order_date) = {year.group(1)}" if year else ""
    return (f"SELECT SUM(amount) FROM raw_orders{condition};\n"
            "-- Summed the order amounts straight from raw_orders, the complete source of truth for revenue, "
            "instead of relying on a pre-aggregated view.")


def drop_filter(sql: str) -> str | None:
    """A terse wrong query: one filter (or the sort direction) dropped."""
    for pattern in (r" AND year = \d{4}", r" AND quarter = \d", r" AND region = '\w+'", r"region = '\w+' AND ",
                    r"product = '\w+' AND ", r"category = '\w+' AND ", r" DESC"):
        shorter = re.sub(pattern, "", sql, count=1)
        if shorter != sql:
            return shorter
    return None


def broken(sql: str) -> str:
    return sql.replace("FROM", "FORM", 1)


def make_pair(recipe: str, ref: str, key: str) -> tuple[str, str] | None:
    """(correct candidate, other candidate) for one recipe; None when the recipe does not apply to this query."""
    verbose = f"{ref}\n{explain(ref, key)}"
    if recipe == "value_long":
        wrong = wrong_value(ref, key)
        return (ref, f"{wrong}\n{explain(wrong, key)}") if wrong else None
    if recipe == "view_long":
        wrong = wrong_view(ref)
        return ref, f"{wrong}\n{explain(wrong, key)}"
    if recipe == "raw_long":
        return ref, raw_table(ref)
    if recipe == "terse_wrong":
        wrong = drop_filter(ref)
        return (verbose, wrong) if wrong else None
    if recipe == "broken_long":
        return ref, f"{broken(ref)}\n{explain(ref, key)}"
    if recipe == "broken_short":
        return verbose, broken(ref).rstrip(";")
    if recipe == "tie_verbose":
        return ref, verbose
    raise ValueError(recipe)


def build(train_path: Path, config_path: Path) -> list[dict]:
    prompts = [json.loads(line) for line in train_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_template: dict[str, list[dict]] = {}
    for p in sorted(prompts, key=lambda p: _h("pick", p["id"])):
        by_template.setdefault(p["template"], []).append(p)
    chosen = [p for template in sorted(by_template) for p in by_template[template][:PER_TEMPLATE]]
    records = []
    with Project.from_config(load_config(config_path)).open_verifier() as verifier:  # the loop's own SQL verifier

        def correct(text: str, ref: str) -> bool:
            c = verifier.verify(text, ref).criteria()
            return c["sql_executes"] and c["sql_result_matches"] and c["sql_allowlisted_views"]

        for index, p in enumerate(chosen):
            ref = p["reference"]
            recipe = PLAN[index % len(PLAN)]
            pair = make_pair(recipe, ref, p["id"])
            if pair is None:  # e.g. no filter to drop: fall back to a wrong value
                recipe, pair = "value_long", make_pair("value_long", ref, p["id"])
            good, other = pair
            ok_good, ok_other = correct(good, ref), correct(other, ref)
            if not ok_good or (ok_other != (recipe == "tie_verbose")):
                print(f"skipped {p['id']} ({recipe}): the variant did not come out as designed", file=sys.stderr)
                continue
            good_first = _h("sides", p["id"]) % 2 == 0
            a, b = (good, other) if good_first else (other, good)
            label = "tie" if ok_other else ("A" if good_first else "B")
            records.append({"prompt": p["prompt"], "response_a": a, "response_b": b, "slice": p["cohort"],
                            "source": "harbor-sql-sample", "reference": ref, "prompt_id": p["id"],
                            "pair_kind": recipe, f"label_{ORACLE}": label})
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default=str(SAMPLE / "train.jsonl"))
    parser.add_argument("--config", default=str(SAMPLE / "loop.yaml"), help="loop config whose verifier labels pairs")
    parser.add_argument("--out", default=str(SAMPLE / "anchors.jsonl"))
    args = parser.parse_args(argv)
    records = build(Path(args.train), Path(args.config))
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    labels = Counter(r[f"label_{ORACLE}"] for r in records)
    kinds = Counter(r["pair_kind"] for r in records)
    print(f"wrote {len(records)} pairs to {args.out}; oracle labels {dict(sorted(labels.items()))}; "
          f"kinds {dict(sorted(kinds.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
