"""``rlaif anchors import|sample|export|stats|label|adjudicate``: anchor sets, headless.

    rlaif anchors import sample_data/harbor_sql/anchors.jsonl --name harbor-sql
    rlaif anchors label as-1f2e... --annotator ana

``add_commands(subparsers)`` registers the commands on the main parser; each reads the store path from the parent's
``--store`` (``args.store``).
"""

from __future__ import annotations

import json

from rlaif.anchors.defaults import ANNOTATOR_MODES, DEFAULT_HOLDOUT_FRACTION
from rlaif.anchors.exporters import export_anchor_set
from rlaif.anchors.gate import kappa_table
from rlaif.anchors.importers import import_anchor_file
from rlaif.anchors.labelling import adjudicate_majority, next_item, override_label, record_label
from rlaif.anchors.sampling import sample_anchor_set
from rlaif.anchors.stats import anchor_set_stats
from rlaif.cli.common import fmt, store_option
from store import Store


def default_set(store, given: str | None) -> str:
    """The anchor set a command works on: the one given (which must exist), else the newest."""
    if given:
        if store.anchors.get_set(given) is None:
            raise ValueError(f"no anchor set {given!r} in {store.path}; see `rlaif anchors stats`")
        return given
    sets = store.anchors.list_sets()
    if not sets:
        raise ValueError(f"no anchor sets in {store.path}; create one with `rlaif anchors import FILE`")
    return sets[0]["anchor_set_id"]


# ---------------------------------------------------------------------------------------------------------------------
# anchors ...


def cmd_import(args) -> int:
    with Store(args.store) as store:
        r = import_anchor_file(store, args.file, name=args.name, format=args.format,
                               holdout_fraction=args.holdout_fraction, holdout_seed=args.holdout_seed)
    state = "imported" if r.created else "already imported (identical content): nothing written"
    print(f"{r.anchor_set_id}: {state}; {r.n_items} items ({r.format}), {r.n_holdout} in the locked holdout, "
          f"{r.n_labels} labels from {', '.join(r.annotators) or 'no annotators'}")
    return 0


def cmd_sample(args) -> int:
    with Store(args.store) as store:
        r = sample_anchor_set(store, args.run, n=args.n, iteration=args.iteration, seed=args.seed,
                              per_prompt=args.per_prompt, name=args.name, holdout_fraction=args.holdout_fraction)
    print(f"{r.anchor_set_id}: {r.n_items} pairs sampled from {args.run} ({r.n_holdout} in the locked holdout); "
          f"label them with `rlaif anchors label {r.anchor_set_id} --annotator NAME`")
    return 0


def cmd_export(args) -> int:
    with Store(args.store) as store:
        set_id = default_set(store, args.anchor_set)
        n = export_anchor_set(store, set_id, args.out, split=args.split, with_ids=args.with_ids)
    print(f"wrote {n} items of {set_id} ({args.split}) to {args.out}")
    return 0


def cmd_stats(args) -> int:
    with Store(args.store) as store:
        if not args.anchor_set:
            sets = store.anchors.list_sets()
            if not sets:
                print(f"no anchor sets in {args.store}")
            for s in sets:
                print(f"{s['anchor_set_id']}  {s['name']:<24} {s['n_items']:>6} items  source {s['source']}  "
                      f"created {str(s['created_at'])[:19]}")
            return 0
        set_id = default_set(store, args.anchor_set)
        stats = anchor_set_stats(store, set_id)
        table = kappa_table(store, set_id, annotators=args.annotators)
    if args.json:
        print(json.dumps({**stats, "kappa_table": table}, indent=2, default=str, ensure_ascii=False))
        return 0
    print(f"{set_id} {stats['name']}: {stats['n_items']} items, {stats['n_holdout']} in the locked holdout "
          f"({stats['holdout_fraction']:.0%})")
    print("slices: " + ", ".join(f"{k} {v['items']} ({v['holdout']} holdout)" for k, v in stats["slices"].items()))
    for a in stats["annotators"]:
        print(f"  {a['annotator_kind']:<11} {a['annotator']:<28} {a['n_items']:>6} labelled, {a['n_skipped']} skipped")
    cov = stats["human_coverage"]
    print(f"human coverage: {cov['labelled_1+']} items labelled, {cov['labelled_2+']} double-labelled; "
          f"adjudications {stats['adjudications'] or 'none'}; unresolved conflicts {stats['unresolved_conflicts']}")
    ia = stats["inter_annotator"]
    if ia:
        for p in ia["pairwise"]:
            print(f"  kappa {' vs '.join(p['annotators'])}: {fmt(p['kappa'])} on {p['n']} items")
        if ia["fleiss_kappa"] is not None:
            print(f"  Fleiss' kappa ({len(ia['annotators'])} annotators): {fmt(ia['fleiss_kappa'])} "
                  f"on {ia['fleiss_n']} items")
    if table:
        print(f"judge-{args.annotators} kappa on the non-holdout anchors (stored verdicts):")
        print(f"  {'judge':<18} {'rubric':<18} {'slice':<12} {'n':>5} {'kappa':>7} {'95% CI':>17} {'agree':>6}")
        for r in table:
            ci = f"[{fmt(r['ci'][0], 2)}, {fmt(r['ci'][1], 2)}]"
            print(f"  {r['judge_id'][:18]:<18} {r['rubric_version'][:18]:<18} {r['slice'][:12]:<12} {r['n']:>5} "
                  f"{fmt(r['kappa']):>7} {ci:>17} {fmt(r['raw_agreement'], 2):>6}")
    return 0


_KEYS = {"1": "left", "l": "left", "2": "right", "r": "right", "t": "tie", "s": "skip"}


def cmd_label(args) -> int:
    """A terminal labelling loop: blind, sides randomized per annotator, one keypress (and Enter) per item."""
    done = 0
    with Store(args.store) as store:
        set_id = default_set(store, args.anchor_set)
        while args.limit is None or done < args.limit:
            p = next_item(store, set_id, args.annotator)
            if p is None:
                print("nothing left to label in this set")
                break
            print("\n" + "=" * 100 + f"\nPROMPT ({p.item_id})\n{p.prompt}\n" + "-" * 100)
            print(f"[1] LEFT\n{p.left}\n" + "-" * 100 + f"\n[2] RIGHT\n{p.right}\n" + "-" * 100)
            try:
                answer = input("1/l = left, 2/r = right, t = tie, s = skip, q = quit; a note may follow: ").strip()
            except EOFError:
                break
            key, _, note = answer.partition(" ")
            if key.lower() == "q":
                break
            if key.lower() not in _KEYS:
                print(f"unknown answer {key!r}")
                continue
            record_label(store, p, _KEYS[key.lower()], note=note.strip() or None)
            done += 1
    print(f"{done} labels recorded for {args.annotator}")
    return 0


def cmd_adjudicate(args) -> int:
    with Store(args.store) as store:
        if args.item:
            if not args.label or not args.reason:
                raise ValueError("an override needs --label and --reason")
            override_label(store, args.item, args.adjudicator, args.label, args.reason)
            print(f"{args.item}: overridden to {args.label} by {args.adjudicator}")
            return 0
        set_id = default_set(store, args.anchor_set)
        summary = adjudicate_majority(store, set_id, min_labels=args.min_labels)
    print(f"{len(summary.recorded)} majority decisions recorded, {len(summary.overridden)} items decided by "
          f"overrides, {len(summary.conflicts)} conflicts need an adjudicator:")
    for item_id in summary.conflicts:
        print(f"  rlaif anchors adjudicate --item {item_id} --label A|B|tie --reason '...'")
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# registration


def add_commands(subparsers) -> None:
    """Register ``anchors`` and its sub-commands on the main parser's subparsers."""

    anchors = subparsers.add_parser("anchors", help="anchor sets: import, sample, export, stats, label, adjudicate")
    sub = anchors.add_subparsers(dest="anchors_command", required=True)

    p = sub.add_parser("import", help="import a JSONL/CSV/Parquet file as an anchor set (all or nothing)")
    p.add_argument("file")
    p.add_argument("--name", help="anchor set name (default: the file name)")
    p.add_argument("--format", choices=("preference", "hh", "pairwise"), help="file shape (default: detected)")
    p.add_argument("--holdout-fraction", type=float, default=DEFAULT_HOLDOUT_FRACTION,
                   help=f"locked never-tune share (default {DEFAULT_HOLDOUT_FRACTION})")
    p.add_argument("--holdout-seed", type=int, default=0, help="seed of the holdout draw")
    store_option(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("sample", help="sample an anchor set from a run, preferring pairs judges disagree on")
    p.add_argument("--run", required=True, help="run id")
    p.add_argument("--iteration", type=int, help="only this iteration's pairs")
    p.add_argument("-n", type=int, default=100, help="pairs to sample (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-prompt", type=int, default=1, help="most pairs per prompt (default 1)")
    p.add_argument("--name", help="anchor set name (default: <run>-anchors)")
    p.add_argument("--holdout-fraction", type=float, default=DEFAULT_HOLDOUT_FRACTION)
    store_option(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("export", help="write an anchor set with its labels to JSONL/CSV/Parquet")
    p.add_argument("anchor_set", nargs="?", help="anchor set id (default: the newest)")
    p.add_argument("out", help="output file: .jsonl, .csv or .parquet")
    p.add_argument("--split", choices=("all", "tuning", "holdout"), default="all")
    p.add_argument("--with-ids", action="store_true", help="add item_id and is_holdout columns")
    store_option(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("stats", help="list anchor sets, or one set's labels, agreement and judge kappas")
    p.add_argument("anchor_set", nargs="?", help="anchor set id (default: list the sets)")
    p.add_argument("--annotators", choices=ANNOTATOR_MODES, default="human", help="labels the kappa table uses")
    p.add_argument("--json", action="store_true")
    store_option(p)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("label", help="label anchor pairs in the terminal (blind, sides randomized)")
    p.add_argument("anchor_set", nargs="?", help="anchor set id (default: the newest)")
    p.add_argument("--annotator", required=True, help="your name, as labels record it")
    p.add_argument("--limit", type=int, help="stop after this many labels")
    store_option(p)
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("adjudicate", help="record majority decisions, or override one item with a reason")
    p.add_argument("anchor_set", nargs="?", help="anchor set id (default: the newest)")
    p.add_argument("--item", help="override this item (needs --label and --reason)")
    p.add_argument("--label", choices=("A", "B", "tie"))
    p.add_argument("--reason", help="why (recorded with the override)")
    p.add_argument("--adjudicator", default="adjudicator", help="who decides")
    p.add_argument("--min-labels", type=int, default=2, help="human labels an item needs for a majority decision")
    store_option(p)
    p.set_defaults(func=cmd_adjudicate)
