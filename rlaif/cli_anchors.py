"""``rlaif anchors import|sample|export|stats|label|adjudicate`` and ``rlaif kappa``: calibration, headless.

    rlaif anchors import sample_data/harbor_sql/anchors.jsonl --name harbor-sql
    rlaif kappa --judge verifier --rubric sample_data/harbor_sql/rubric.yaml --config sample_data/harbor_sql/loop.yaml \
        --annotators oracle
    rlaif anchors label as-1f2e... --annotator ana

``add_commands(subparsers)`` registers the commands on the main parser; each reads the store path from the parent's
``--store`` (``args.store``). ``kappa`` exits 0 when the gate passes and 1 when it blocks, so scripts can gate on it.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from contextlib import ExitStack
from pathlib import Path

from rlaif.anchors.defaults import ANNOTATOR_MODES, DEFAULT_HOLDOUT_FRACTION, DEFAULT_MIN_ITEMS, DEFAULT_THRESHOLD


def _friendly_errors(command):
    """Input problems (bad file, unknown id, invalid option) are one line on stderr and exit code 2."""

    @functools.wraps(command)
    def run(args) -> int:
        try:
            return command(args)
        except (ValueError, KeyError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            print(f"error: {message}", file=sys.stderr)
            return 2

    return run


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def _default_set(store, given: str | None) -> str:
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


@_friendly_errors
def cmd_import(args) -> int:
    from rlaif.anchors.importers import import_anchor_file
    from store import Store

    with Store(args.store) as store:
        r = import_anchor_file(store, args.file, name=args.name, format=args.format,
                               holdout_fraction=args.holdout_fraction, holdout_seed=args.holdout_seed)
    state = "imported" if r.created else "already imported (identical content): nothing written"
    print(f"{r.anchor_set_id}: {state}; {r.n_items} items ({r.format}), {r.n_holdout} in the locked holdout, "
          f"{r.n_labels} labels from {', '.join(r.annotators) or 'no annotators'}")
    return 0


@_friendly_errors
def cmd_sample(args) -> int:
    from rlaif.anchors.sampling import sample_anchor_set
    from store import Store

    with Store(args.store) as store:
        r = sample_anchor_set(store, args.run, n=args.n, iteration=args.iteration, seed=args.seed,
                              per_prompt=args.per_prompt, name=args.name, holdout_fraction=args.holdout_fraction)
    print(f"{r.anchor_set_id}: {r.n_items} pairs sampled from {args.run} ({r.n_holdout} in the locked holdout); "
          f"label them with `rlaif anchors label {r.anchor_set_id} --annotator NAME`")
    return 0


@_friendly_errors
def cmd_export(args) -> int:
    from rlaif.anchors.exporters import export_anchor_set
    from store import Store

    with Store(args.store) as store:
        set_id = _default_set(store, args.anchor_set)
        n = export_anchor_set(store, set_id, args.out, split=args.split, with_ids=args.with_ids)
    print(f"wrote {n} items of {set_id} ({args.split}) to {args.out}")
    return 0


@_friendly_errors
def cmd_stats(args) -> int:
    from rlaif.anchors.gate import kappa_table
    from rlaif.anchors.stats import anchor_set_stats
    from store import Store

    with Store(args.store) as store:
        if not args.anchor_set:
            sets = store.anchors.list_sets()
            if not sets:
                print(f"no anchor sets in {args.store}")
            for s in sets:
                print(f"{s['anchor_set_id']}  {s['name']:<24} {s['n_items']:>6} items  source {s['source']}  "
                      f"created {str(s['created_at'])[:19]}")
            return 0
        set_id = _default_set(store, args.anchor_set)
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
            print(f"  kappa {' vs '.join(p['annotators'])}: {_fmt(p['kappa'])} on {p['n']} items")
        if ia["fleiss_kappa"] is not None:
            print(f"  Fleiss' kappa ({len(ia['annotators'])} annotators): {_fmt(ia['fleiss_kappa'])} "
                  f"on {ia['fleiss_n']} items")
    if table:
        print(f"judge-{args.annotators} kappa on the non-holdout anchors (stored verdicts):")
        print(f"  {'judge':<18} {'rubric':<18} {'slice':<12} {'n':>5} {'kappa':>7} {'95% CI':>17} {'agree':>6}")
        for r in table:
            ci = f"[{_fmt(r['ci'][0], 2)}, {_fmt(r['ci'][1], 2)}]"
            print(f"  {r['judge_id'][:18]:<18} {r['rubric_version'][:18]:<18} {r['slice'][:12]:<12} {r['n']:>5} "
                  f"{_fmt(r['kappa']):>7} {ci:>17} {_fmt(r['raw_agreement'], 2):>6}")
    return 0


_KEYS = {"1": "left", "l": "left", "2": "right", "r": "right", "t": "tie", "s": "skip"}


@_friendly_errors
def cmd_label(args) -> int:
    """A terminal labelling loop: blind, sides randomized per annotator, one keypress (and Enter) per item."""
    from rlaif.anchors.labelling import next_item, record_label
    from store import Store

    done = 0
    with Store(args.store) as store:
        set_id = _default_set(store, args.anchor_set)
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


@_friendly_errors
def cmd_adjudicate(args) -> int:
    from rlaif.anchors.labelling import adjudicate_majority, override_label
    from store import Store

    with Store(args.store) as store:
        if args.item:
            if not args.label or not args.reason:
                raise ValueError("an override needs --label and --reason")
            override_label(store, args.item, args.adjudicator, args.label, args.reason)
            print(f"{args.item}: overridden to {args.label} by {args.adjudicator}")
            return 0
        set_id = _default_set(store, args.anchor_set)
        summary = adjudicate_majority(store, set_id, min_labels=args.min_labels)
    print(f"{len(summary.recorded)} majority decisions recorded, {len(summary.overridden)} items decided by "
          f"overrides, {len(summary.conflicts)} conflicts need an adjudicator:")
    for item_id in summary.conflicts:
        print(f"  rlaif anchors adjudicate --item {item_id} --label A|B|tie --reason '...'")
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# kappa


def _load_rubric(store, spec: str):
    from rlaif.rubric import load_rubric, rubric_from_dict

    if Path(spec).suffix.lower() in (".yaml", ".yml") or Path(spec).is_file():
        return load_rubric(spec)
    for row in store.rubrics.list():
        rubric = rubric_from_dict(row["body"], source=f"rubric {row['rubric_version']}")
        if row["rubric_version"].startswith(spec) or rubric.version.startswith(spec):
            return rubric
    raise ValueError(f"--rubric {spec!r}: no such file and no stored rubric version starting with it")


def _make_judge(args, store, stack: ExitStack):
    from rlaif.judges import make_judge

    verify, options = None, None
    if args.config:
        from rlaif.config import load_config

        cfg = load_config(args.config)
        options = cfg.judge.options if cfg.judge.name == args.judge else None
        if cfg.verifier.kind == "sql":
            from rlaif.sql_sandbox import SqlSandbox
            from rlaif.sql_verifier import SqlVerifier

            sandbox = stack.enter_context(SqlSandbox(Path(cfg.resolve(cfg.verifier.warehouse)),
                                                     allowed_relations=list(cfg.verifier.allowed_relations),
                                                     timeout_s=cfg.verifier.timeout_s))
            verify = SqlVerifier(sandbox).verify
    if args.judge == "verifier" and verify is None:
        raise ValueError("judge 'verifier' needs the task's verifier: pass --config LOOP.yaml (its verifier section)")
    return make_judge(args.judge, verify=verify, options=options, store=store)


def print_gate(result) -> None:
    d = result.to_dict()
    ci = d["ci"]
    print(f"judge {d['judge_id']} / rubric {d['rubric_version']} on {d['anchor_set_id']} ({d['annotators']} labels)")
    print(f"  kappa {_fmt(d['kappa'])}  95% CI [{_fmt(ci[0])}, {_fmt(ci[1])}]  n {d['n']}  raw agreement "
          f"{_fmt(d['raw_agreement'])}  invalid verdicts {d['n_invalid']}")
    two = d["two_class"]
    print(f"  ties excluded (A/B only): kappa {_fmt(two['kappa'])} on {two['n']} items")
    labels = d["confusion"]["labels"]
    print("  confusion (rows: labels, columns: judge): " + "  ".join(labels))
    for name, row in zip(labels, d["confusion"]["matrix"]):
        print(f"    {name:<8} " + " ".join(f"{v:>6}" for v in row))
    for name, s in d["slices"].items():
        print(f"  slice {name:<14} n {s['n']:>4}  kappa {_fmt(s['kappa']):>6}  CI [{_fmt(s['ci'][0], 2)}, "
              f"{_fmt(s['ci'][1], 2)}]  agreement {_fmt(s['raw_agreement'], 2)}")
    if d["holdout"]:
        h = d["holdout"]
        print(f"  locked holdout (reported, never decided on): kappa {_fmt(h['kappa'])} on {h['n']} items")
    print(f"GATE {d['decision'].upper()}: {d['reason']}")


@_friendly_errors
def cmd_kappa(args) -> int:
    from rlaif.anchors.gate import kappa_gate
    from store import Store

    with Store(args.store) as store, ExitStack() as stack:
        set_id = _default_set(store, args.anchor_set)
        rubric = _load_rubric(store, args.rubric)
        judge = _make_judge(args, store, stack)
        result = kappa_gate(store, judge, rubric, set_id, threshold=args.threshold, min_items=args.min_items,
                            annotators=args.annotators, override=args.override,
                            override_reason=args.override_reason, slices=args.slice, seed=args.seed,
                            n_resamples=args.resamples, reuse_verdicts=not args.rejudge, record=not args.no_record)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print_gate(result)
    return 0 if result.passed else 1


# ---------------------------------------------------------------------------------------------------------------------
# registration


def add_commands(subparsers) -> None:
    """Register ``anchors`` (with its sub-commands) and ``kappa`` on the main parser's subparsers."""
    store_opt = {"default": argparse.SUPPRESS, "help": "DuckDB store file"}

    anchors = subparsers.add_parser("anchors", help="anchor sets: import, sample, export, stats, label, adjudicate")
    sub = anchors.add_subparsers(dest="anchors_command", required=True)

    p = sub.add_parser("import", help="import a JSONL/CSV/Parquet file as an anchor set (all or nothing)")
    p.add_argument("file")
    p.add_argument("--name", help="anchor set name (default: the file name)")
    p.add_argument("--format", choices=("preference", "hh", "pairwise"), help="file shape (default: detected)")
    p.add_argument("--holdout-fraction", type=float, default=DEFAULT_HOLDOUT_FRACTION,
                   help=f"locked never-tune share (default {DEFAULT_HOLDOUT_FRACTION})")
    p.add_argument("--holdout-seed", type=int, default=0, help="seed of the holdout draw")
    p.add_argument("--store", **store_opt)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("sample", help="sample an anchor set from a run, preferring pairs judges disagree on")
    p.add_argument("--run", required=True, help="run id")
    p.add_argument("--iteration", type=int, help="only this iteration's pairs")
    p.add_argument("-n", type=int, default=100, help="pairs to sample (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-prompt", type=int, default=1, help="most pairs per prompt (default 1)")
    p.add_argument("--name", help="anchor set name (default: <run>-anchors)")
    p.add_argument("--holdout-fraction", type=float, default=DEFAULT_HOLDOUT_FRACTION)
    p.add_argument("--store", **store_opt)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("export", help="write an anchor set with its labels to JSONL/CSV/Parquet")
    p.add_argument("anchor_set", nargs="?", help="anchor set id (default: the newest)")
    p.add_argument("out", help="output file: .jsonl, .csv or .parquet")
    p.add_argument("--split", choices=("all", "tuning", "holdout"), default="all")
    p.add_argument("--with-ids", action="store_true", help="add item_id and is_holdout columns")
    p.add_argument("--store", **store_opt)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("stats", help="list anchor sets, or one set's labels, agreement and judge kappas")
    p.add_argument("anchor_set", nargs="?", help="anchor set id (default: list the sets)")
    p.add_argument("--annotators", choices=ANNOTATOR_MODES, default="human", help="labels the kappa table uses")
    p.add_argument("--json", action="store_true")
    p.add_argument("--store", **store_opt)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("label", help="label anchor pairs in the terminal (blind, sides randomized)")
    p.add_argument("anchor_set", nargs="?", help="anchor set id (default: the newest)")
    p.add_argument("--annotator", required=True, help="your name, as labels record it")
    p.add_argument("--limit", type=int, help="stop after this many labels")
    p.add_argument("--store", **store_opt)
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("adjudicate", help="record majority decisions, or override one item with a reason")
    p.add_argument("anchor_set", nargs="?", help="anchor set id (default: the newest)")
    p.add_argument("--item", help="override this item (needs --label and --reason)")
    p.add_argument("--label", choices=("A", "B", "tie"))
    p.add_argument("--reason", help="why (recorded with the override)")
    p.add_argument("--adjudicator", default="adjudicator", help="who decides")
    p.add_argument("--min-labels", type=int, default=2, help="human labels an item needs for a majority decision")
    p.add_argument("--store", **store_opt)
    p.set_defaults(func=cmd_adjudicate)

    p = subparsers.add_parser("kappa", help="judge-label Cohen's kappa on the non-holdout anchors, and the gate")
    p.add_argument("--judge", required=True, help="judge name: verifier, stub, biased, ...")
    p.add_argument("--rubric", required=True, help="rubric YAML file, or a stored rubric version (prefix)")
    p.add_argument("--anchor-set", help="anchor set id (default: the newest)")
    p.add_argument("--slice", action="append", help="only this slice (repeatable)")
    p.add_argument("--annotators", choices=ANNOTATOR_MODES, default="human",
                   help="whose labels count: human (default), oracle, any")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help=f"gate threshold (default "
                                                                              f"{DEFAULT_THRESHOLD})")
    p.add_argument("--min-items", type=int, default=DEFAULT_MIN_ITEMS,
                   help=f"fewest labelled items (default {DEFAULT_MIN_ITEMS})")
    p.add_argument("--config", help="loop YAML whose verifier (and judge options) the judge uses")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--override", action="store_true", help="pass a blocked gate (recorded; needs --override-reason)")
    p.add_argument("--override-reason")
    p.add_argument("--rejudge", action="store_true", help="judge again instead of reusing stored verdicts")
    p.add_argument("--no-record", action="store_true", help="do not store a kappa report")
    p.add_argument("--json", action="store_true", help="print the gate result as JSON")
    p.add_argument("--store", **store_opt)
    p.set_defaults(func=cmd_kappa)
