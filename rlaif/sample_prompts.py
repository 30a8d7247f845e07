"""Deterministic question/golden-SQL sets for the bundled Harbor Analytics sample project.

Every question is an *item*: a template (one canonical SQL spelling) filled with slot values
(region, year, quarter, product, category, k, direction). Train and eval are disjoint at the item
level, so no eval question is a paraphrase of a train question. The eval set additionally holds
the cohort ``unseen_combo``: items whose region×year or product×year pair never occurs in any train
item (the policy has to compose the slot values, not recall them).

Output rows: ``{"id", "prompt", "reference", "cohort", "template", "family"}`` where ``cohort`` is the
template family (``aggregate``, ``count``, ``ranking``, ``breakdown``) or ``unseen_combo``, and
``family`` is always the template family.

    train_rows, eval_rows = build_prompt_sets(seed=0)   # or: python scripts/build_sample_prompts.py
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data" / "harbor_sql"

REGIONS = ["North", "South", "East", "West", "Central"]
YEARS = [2021, 2022, 2023, 2024, 2025]
QUARTERS = [1, 2, 3, 4]
PRODUCTS = ["Anchor", "Beacon", "Compass", "Lantern", "Mariner", "Pilot", "Rudder", "Sextant"]
CATEGORIES = ["Hardware", "Software", "Services"]
TOP_K = [2, 3, 4, 5]

ALLOWED_VIEW_GLOB = "v_revenue_*"

# Region×year and product×year pairs held out of train entirely (eval cohort "unseen_combo").
UNSEEN_REGION_YEARS = [("North", 2021), ("South", 2022), ("East", 2023), ("West", 2024), ("Central", 2025)]
UNSEEN_PRODUCT_YEARS = [("Sextant", 2021), ("Compass", 2022), ("Rudder", 2023), ("Anchor", 2025)]

UNSEEN_COHORT = "unseen_combo"

_UP = {"highest": "top", "lowest": "bottom"}
_BEST = {"highest": "best", "lowest": "worst"}
_MOST = {"highest": "most", "lowest": "least"}
_SQL_DIR = {"highest": "DESC", "lowest": "ASC"}


@dataclass(frozen=True)
class Template:
    name: str
    family: str
    slots: tuple[str, ...]
    phrasings: tuple[str, ...]
    sql: str


TEMPLATES: list[Template] = [
    Template(
        "region_year_total", "aggregate", ("region", "year"),
        (
            "What was the total revenue in the {region} region in {year}?",
            "Total revenue for {region} in {year}?",
            "How much revenue did the {region} region bring in during {year}?",
        ),
        "SELECT SUM(revenue) FROM v_revenue_by_region WHERE region = '{region}' AND year = {year};",
    ),
    Template(
        "region_quarter_revenue", "aggregate", ("region", "year", "quarter"),
        (
            "What was the revenue in {region} in Q{quarter} {year}?",
            "Revenue for the {region} region in quarter {quarter} of {year}?",
            "How much revenue did {region} make in Q{quarter} of {year}?",
        ),
        "SELECT revenue FROM v_revenue_by_region WHERE region = '{region}' AND year = {year} AND quarter = {quarter};",
    ),
    Template(
        "region_avg_monthly", "aggregate", ("region", "year"),
        (
            "What was the average monthly revenue in {region} in {year}?",
            "Average revenue per month for the {region} region in {year}?",
            "On average, how much revenue did {region} make per month in {year}?",
        ),
        "SELECT AVG(revenue) FROM v_revenue_monthly WHERE region = '{region}' AND year = {year};",
    ),
    Template(
        "product_year_revenue", "aggregate", ("product", "year"),
        (
            "What was the revenue for {product} in {year}?",
            "How much revenue did the {product} product generate in {year}?",
            "Revenue from {product} sales in {year}?",
        ),
        "SELECT revenue FROM v_revenue_by_product WHERE product = '{product}' AND year = {year};",
    ),
    Template(
        "category_year_revenue", "aggregate", ("category", "year"),
        (
            "What was the total revenue for the {category} category in {year}?",
            "How much revenue did {category} products bring in during {year}?",
            "Total {category} revenue in {year}?",
        ),
        "SELECT SUM(revenue) FROM v_revenue_by_product WHERE category = '{category}' AND year = {year};",
    ),
    Template(
        "region_year_orders", "count", ("region", "year"),
        (
            "How many orders did the {region} region have in {year}?",
            "Number of orders in {region} in {year}?",
            "Count the orders placed in the {region} region during {year}.",
        ),
        "SELECT SUM(orders) FROM v_revenue_by_region WHERE region = '{region}' AND year = {year};",
    ),
    Template(
        "product_year_units", "count", ("product", "year"),
        (
            "How many units of {product} were sold in {year}?",
            "Number of {product} units sold in {year}?",
            "Count the units of {product} sold during {year}.",
        ),
        "SELECT units FROM v_revenue_by_product WHERE product = '{product}' AND year = {year};",
    ),
    Template(
        "region_quarterly", "breakdown", ("region", "year"),
        (
            "Show the quarterly revenue for {region} in {year}.",
            "Break down {year} revenue in the {region} region by quarter.",
            "List revenue per quarter for the {region} region in {year}.",
        ),
        "SELECT quarter, revenue FROM v_revenue_by_region WHERE region = '{region}' AND year = {year} ORDER BY quarter;",
    ),
    Template(
        "region_monthly", "breakdown", ("region", "year"),
        (
            "Show the monthly revenue for {region} in {year}.",
            "Break down {year} revenue in the {region} region by month.",
            "List revenue per month for the {region} region in {year}.",
        ),
        "SELECT month, revenue FROM v_revenue_monthly WHERE region = '{region}' AND year = {year} ORDER BY month;",
    ),
    Template(
        "top_products", "ranking", ("k", "direction", "year"),
        (
            "Which {k} products had the {direction} revenue in {year}?",
            "List the {up} {k} products by revenue in {year}.",
            "Show the {k} {best}-selling products by revenue for {year}.",
        ),
        "SELECT product, revenue FROM v_revenue_by_product WHERE year = {year} ORDER BY revenue {sql_dir} LIMIT {k};",
    ),
    Template(
        "best_region_year", "ranking", ("direction", "year"),
        (
            "Which region had the {direction} revenue in {year}?",
            "What was the {best} region by revenue in {year}?",
            "Name the region with the {most} revenue in {year}.",
        ),
        "SELECT region FROM v_revenue_by_region WHERE year = {year} GROUP BY region "
        "ORDER BY SUM(revenue) {sql_dir} LIMIT 1;",
    ),
    Template(
        "best_region_quarter", "ranking", ("direction", "year", "quarter"),
        (
            "Which region had the {direction} revenue in Q{quarter} {year}?",
            "What was the {best} region by revenue in quarter {quarter} of {year}?",
            "Name the region with the {most} revenue in Q{quarter} of {year}.",
        ),
        "SELECT region FROM v_revenue_by_region WHERE year = {year} AND quarter = {quarter} "
        "ORDER BY revenue {sql_dir} LIMIT 1;",
    ),
]

FAMILIES = ["aggregate", "count", "ranking", "breakdown"]

_SLOT_VALUES = {
    "region": REGIONS,
    "year": YEARS,
    "quarter": QUARTERS,
    "product": PRODUCTS,
    "category": CATEGORIES,
    "k": TOP_K,
    "direction": ["highest", "lowest"],
}


@dataclass(frozen=True)
class Item:
    template: Template
    values: tuple[tuple[str, object], ...]

    @property
    def slots(self) -> dict:
        return dict(self.values)

    def fmt_values(self) -> dict:
        v = self.slots
        if "direction" in v:
            d = v["direction"]
            v.update(up=_UP[d], best=_BEST[d], most=_MOST[d], sql_dir=_SQL_DIR[d])
        return v

    def prompt(self, phrasing: int) -> str:
        return self.template.phrasings[phrasing].format(**self.fmt_values())

    def reference(self) -> str:
        return self.template.sql.format(**self.fmt_values())

    def is_unseen_combo(self) -> bool:
        v = self.slots
        if "region" in v and (v["region"], v["year"]) in UNSEEN_REGION_YEARS:
            return True
        if "product" in v and (v["product"], v["year"]) in UNSEEN_PRODUCT_YEARS:
            return True
        return False


def all_items() -> list[Item]:
    """Every (template, slot values) combination, in a fixed order."""
    items: list[Item] = []
    for t in TEMPLATES:
        combos: list[dict] = [{}]
        for slot in t.slots:
            combos = [{**c, slot: val} for c in combos for val in _SLOT_VALUES[slot]]
        for c in combos:
            items.append(Item(t, tuple((s, c[s]) for s in t.slots)))
    return items


def build_prompt_sets(
    seed: int = 0,
    *,
    eval_per_family: dict[str, int] | None = None,
    n_unseen_eval: int = 25,
    train_extra_phrasings: float = 0.0,
) -> tuple[list[dict], list[dict]]:
    """Build (train_rows, eval_rows), deterministically for a given seed.

    ``eval_per_family``: how many seen-combination items of each family go to eval (rest go to train).
    ``n_unseen_eval``: how many unseen-combination items go to eval (the others are used nowhere).
    ``train_extra_phrasings``: fraction of train items that also appear under a second phrasing.
    """
    rng = random.Random(seed)
    eval_per_family = eval_per_family or {"aggregate": 25, "count": 15, "ranking": 20, "breakdown": 15}

    seen_by_family: dict[str, list[Item]] = defaultdict(list)
    unseen: list[Item] = []
    for item in all_items():
        (unseen if item.is_unseen_combo() else seen_by_family[item.template.family]).append(item)

    eval_items: list[tuple[Item, str]] = []
    train_items: list[Item] = []
    for fam in FAMILIES:
        pool = list(seen_by_family[fam])
        rng.shuffle(pool)
        n = eval_per_family.get(fam, 0)
        eval_items += [(it, fam) for it in pool[:n]]
        train_items += pool[n:]
    pool = list(unseen)
    rng.shuffle(pool)
    eval_items += [(it, UNSEEN_COHORT) for it in pool[:n_unseen_eval]]

    train_rows: list[dict] = []
    rng.shuffle(train_items)
    for item in train_items:
        phr = rng.sample(range(len(item.template.phrasings)), len(item.template.phrasings))
        n_phr = 2 if rng.random() < train_extra_phrasings else 1
        for p in phr[:n_phr]:
            train_rows.append(_row(item, p, item.template.family))
    eval_rows: list[dict] = []
    for item, cohort in eval_items:
        eval_rows.append(_row(item, rng.randrange(len(item.template.phrasings)), cohort))

    for i, r in enumerate(train_rows, 1):
        r["id"] = f"train-{i:04d}"
    for i, r in enumerate(eval_rows, 1):
        r["id"] = f"eval-{i:04d}"
    train_rows = [_ordered(r) for r in train_rows]
    eval_rows = [_ordered(r) for r in eval_rows]
    return train_rows, eval_rows


def _row(item: Item, phrasing: int, cohort: str) -> dict:
    return {
        "prompt": item.prompt(phrasing),
        "reference": item.reference(),
        "cohort": cohort,
        "template": item.template.name,
        "family": item.template.family,
    }


def _ordered(r: dict) -> dict:
    return {k: r[k] for k in ("id", "prompt", "reference", "cohort", "template", "family")}


def write_jsonl(rows: Iterable[dict], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_prompt_sets(out_dir: str | Path = SAMPLE_DIR, seed: int = 0, **kwargs) -> tuple[Path, Path]:
    train, evl = build_prompt_sets(seed, **kwargs)
    out_dir = Path(out_dir)
    write_jsonl(train, out_dir / "train.jsonl")
    write_jsonl(evl, out_dir / "eval.jsonl")
    return out_dir / "train.jsonl", out_dir / "eval.jsonl"


def connect_warehouse(sql_path: str | Path = SAMPLE_DIR / "warehouse.sql"):
    """An in-memory DuckDB connection loaded from warehouse.sql (for building and checking the sample;
    the production sandbox lives elsewhere)."""
    import duckdb

    con = duckdb.connect()
    con.execute(Path(sql_path).read_text(encoding="utf-8"))
    return con
