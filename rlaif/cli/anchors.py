"""``rlaif anchors import|sample|export|stats|delete|label|adjudicate``: anchor sets, headless.

    rlaif anchors import sample_data/harbor_sql/anchors.jsonl --name harbor-sql
    rlaif anchors label as-1f2e... --annotator ana

``add_commands(subparsers)`` registers the commands on the main parser; each reads the store path from the parent's
``--store`` (``args.store``).
"""

from __future__ import annotations

import argparse
import json

from rlaif.anchors.defaults import ANNOTATOR_MODES, DEFAULT_HOLDOUT_FRACTION
from rlaif.anchors.exporters import export_anchor_set
from rlaif.anchors.gate import kappa_table
from rlaif.anchors.importers import FORMAT_GUIDE, FORMATS, ImportOptions, parse_anchor_file, store_parsed_file
from rlaif.anchors.labelling import adjudicate_majority, next_item, override_label, record_label
from rlaif.anchors.sampling import sample_anchor_set
from rlaif.anchors.sets import delete_anchor_set
from rlaif.anchors.stats import anchor_set_stats
from rlaif.cli.common import fmt, positive_int, print_table, store_option
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
    """Import a file; report how many labels arrived from whom, so a dropped label column cannot go unnoticed."""
    options = ImportOptions(format=args.format, label_columns=args.label_column, extra_columns=args.extra_column,
                            prompt_field=args.prompt_field, response_fields=args.response_fields,
                            question=args.question, annotator_names=args.annotator_name)
    parsed = parse_anchor_file(args.file, options=options)
    with Store(args.store) as store:
        r = store_parsed_file(store, parsed, name=args.name, holdout_fraction=args.holdout_fraction,
                              holdout_seed=args.holdout_seed)
    state = "imported" if r.created else "already imported (identical content): nothing written"
    counts = ", ".join(f"{who} {n}" for who, n in r.label_counts.items())
    labels = f"{sum(r.label_counts.values())} labels: {counts}" if counts else "no labels"
    print(f"{r.anchor_set_id}: {state}; {r.n_items} items ({r.format}), {r.n_holdout} in the locked holdout; {labels}")
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
            print_table(["anchor set", "name", "items", "source", "created"],
                        [[s["anchor_set_id"], s["name"], s["n_items"], s["source"], str(s["created_at"])[:19]]
                         for s in sets], indent="", right=(2,))
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
    print_table(["kind", "annotator", "labelled", "skipped"],
                [[a["annotator_kind"], a["annotator"], a["n_items"], a["n_skipped"]] for a in stats["annotators"]],
                right=(2, 3))
    cov, adj = stats["human_coverage"], stats["adjudication"]
    print(f"human coverage: {cov['labelled_1+']} items labelled, {cov['labelled_2+']} double-labelled; "
          f"adjudications {stats['adjudications'] or 'none'}; unresolved conflicts {stats['unresolved_conflicts']}")
    print(f"agreement of people on the {adj['n']} items with 2+ labels: {adj['unanimous']} unanimous, "
          f"{adj['majority']} majority, {adj['conflicts']} in conflict; {adj['overridden']} overridden by an "
          "adjudicator")
    for split, counts in stats["label_split"].items():
        print(f"the human label that counts ({split}): A {counts['A']}, B {counts['B']}, tie {counts['tie']}, "
              f"unlabelled {counts['unlabelled']}")
    ia = stats["inter_annotator"]
    if ia:
        for p in ia["pairwise"]:
            print(f"  Cohen's kappa {' vs '.join(p['annotators'])}: {fmt(p['kappa'])} on {p['n']} items")
        if ia["fleiss_kappa"] is not None:
            print(f"  Fleiss' kappa ({len(ia['annotators'])} annotators): {fmt(ia['fleiss_kappa'])} "
                  f"on {ia['fleiss_n']} items")
        alpha = ia["krippendorff_alpha"]
        print(f"  Krippendorff's alpha (nominal): {fmt(alpha['alpha'])}, 95% CI [{fmt(alpha['ci'][0])}, "
              f"{fmt(alpha['ci'][1])}], on {alpha['n']} items with 2+ labels")
    if table:
        print(f"judge-{args.annotators} kappa on the non-holdout anchors (stored verdicts; rubric versions by the "
              "prefix --rubric takes):")
        print_table(["judge", "rubric", "slice", "n", "kappa", "95% CI", "agree"],
                    [[r["judge_id"], r["rubric_version"][:12], r["slice"], r["n"], fmt(r["kappa"]),
                      f"[{fmt(r['ci'][0], 2)}, {fmt(r['ci'][1], 2)}]", fmt(r["raw_agreement"], 2)] for r in table],
                    right=(3, 4, 5, 6))
    return 0


def cmd_delete(args) -> int:
    """Delete an anchor set; refused while a run's manifest names it, unless --force (the manifests stay intact)."""
    with Store(args.store) as store:
        result = delete_anchor_set(store, args.anchor_set, force=args.force)
    order = ("anchor_sets", "anchor_items", "anchor_labels", "adjudications", "judge_anchor_verdicts", "kappa_reports")
    removed = ", ".join(f"{result.deleted[t]} {t}" for t in sorted(result.deleted, key=lambda t: (
        order.index(t) if t in order else len(order), t)) if result.deleted[t])
    print(f"deleted anchor set {result.anchor_set_id} ({result.name}): {removed}")
    for m in result.kept_manifests:
        print(f"  kept manifest {m['manifest_id']} (run {m['run_id']}, iteration {m['iteration']}): it still names "
              "the deleted set and still verifies")
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

    anchors = subparsers.add_parser("anchors", help="anchor sets: import, sample, export, stats, delete, label, adjudicate")
    sub = anchors.add_subparsers(dest="anchors_command", required=True)

    p = sub.add_parser("import", help="import an anchor file or a Label Studio / Argilla export (all or nothing)",
                       description="Import a file as an anchor set. The whole file is checked first; one bad record "
                                   "or one label column that is not mapped to an annotator leaves the store "
                                   "unchanged. Prints how many labels arrived from whom.",
                       epilog=FORMAT_GUIDE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--name", help="anchor set name (default: the file name)")
    p.add_argument("--format", choices=FORMATS, help="file shape (default: detected)")
    p.add_argument("--label-column", action="append", default=[], metavar="COLUMN[=ANNOTATOR]",
                   help="pairwise files: import COLUMN as the labels of ANNOTATOR (default: named after the "
                        "column); repeatable")
    p.add_argument("--extra-column", action="append", default=[], metavar="COLUMN",
                   help="pairwise files: COLUMN only looks like a label; keep it as item data (repeatable)")
    p.add_argument("--prompt-field", metavar="KEY", help="tool exports: the data key / field holding the prompt")
    p.add_argument("--response-fields", metavar="LEFT,RIGHT",
                   help="tool exports: the two keys holding the responses, the one shown left (A) first")
    p.add_argument("--question", metavar="NAME", help="Argilla question (Label Studio control from_name) holding "
                                                      "the preference (default: detected)")
    p.add_argument("--annotator-name", action="append", default=[], metavar="USER=NAME",
                   help="tool exports: rename an annotator (USER as imported: e-mail or user-<id>); repeatable")
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

    p = sub.add_parser("delete", help="delete an anchor set with its labels, verdicts and kappa reports")
    p.add_argument("anchor_set", help="anchor set id")
    p.add_argument("--force", action="store_true",
                   help="delete even though a run's manifest names the set (the manifests are kept, unchanged)")
    store_option(p)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("label", help="label anchor pairs in the terminal (blind, sides randomized)")
    p.add_argument("anchor_set", nargs="?", help="anchor set id (default: the newest)")
    p.add_argument("--annotator", required=True, help="your name, as labels record it")
    p.add_argument("--limit", type=positive_int, help="stop after this many labels")
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
