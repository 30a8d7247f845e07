"""``rlaif kappa``: judge-label Cohen's kappa on the non-holdout anchors, and the calibration gate's decision.

    rlaif kappa --judge verifier --config sample_data/harbor_sql/loop.yaml
    rlaif kappa --judge biased --rubric sample_data/harbor_sql/rubric.yaml --annotators oracle --limit 30

The judge is the project's (``--config``: its rubric, its verifier, and its judge options when ``--judge`` names the
config's judge), and so is the gate: with ``--config`` the anchor set, annotators, threshold and rule come from its
``calibration`` section, each flag given on the command line overriding its field. Only the non-holdout items are
judged unless ``--include-holdout``; ``--limit N`` judges a seeded, slice-stratified sample first. Beside kappa it
prints the judge's bias figures on the same items: position flips (each item is asked again with A and B swapped,
once, unless ``--no-swap`` or the judge already asks both orders), first-shown and longer-answer shares, the invalid
rate, and a warning when the judge gives (almost) one answer to all. Exits 0 when the gate passes and 1 when it
blocks, so scripts can gate on it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rlaif.anchors.defaults import ANNOTATOR_MODES, DEFAULT_MIN_ITEMS, DEFAULT_THRESHOLD, GATE_ON
from rlaif.anchors.gate import kappa_gate
from rlaif.anchors.gate_config import CalibrationConfig
from rlaif.anchors.importers import resolve_anchor_set
from rlaif.cli.anchors import default_set
from rlaif.cli.common import fmt, positive_int, store_option
from rlaif.config import ConfigError, RunConfig, load_config
from rlaif.judges.bias import format_bias
from rlaif.loop.project import Project
from rlaif.rubric import Rubric, load_rubric, rubric_from_dict
from store import Store


def load_rubric_arg(store, spec: str) -> Rubric:
    """``--rubric``: a YAML file, or a stored rubric version (or a prefix of one)."""
    if Path(spec).suffix.lower() in (".yaml", ".yml") or Path(spec).is_file():
        return load_rubric(spec)
    for row in store.rubrics.list():
        rubric = rubric_from_dict(row["body"], source=f"rubric {row['rubric_version']}")
        if row["rubric_version"].startswith(spec) or rubric.version.startswith(spec):
            return rubric
    raise ValueError(f"--rubric {spec!r}: no such file and no stored rubric version starting with it")


DEGENERATE = {"all_invalid": "every verdict was invalid", "judge_one_class": "the judge gave one answer to all",
              "labels_one_class": "the labels use one class"}


def print_gate(result) -> None:
    d = result.to_dict()
    ci = d["ci"]
    print(f"judge {d['judge_id']} / rubric {d['rubric_version']} on {d['anchor_set_id']} ({d['annotators']} labels)")
    kappa = f"— ({DEGENERATE[d['degenerate']]})" if d["degenerate"] else fmt(d["kappa"])
    sampled = f" (a stratified sample of {d['n_labelled']})" if d["n_labelled"] and d["n_labelled"] > d["n"] else ""
    print(f"  kappa {kappa}  95% CI [{fmt(ci[0])}, {fmt(ci[1])}]  n {d['n']}{sampled}  raw agreement "
          f"{fmt(d['raw_agreement'])}  invalid verdicts {d['n_invalid']}")
    two = d["two_class"]
    print(f"  ties excluded (A/B only): kappa {fmt(two['kappa'])} on {two['n']} items")
    labels = d["confusion"]["labels"]
    print("  confusion (rows: labels, columns: judge)")
    print(f"    {'':<8}" + "".join(f"{name:>9}" for name in labels))
    for name, row in zip(labels, d["confusion"]["matrix"]):
        print(f"    {name:<8}" + "".join(f"{v:>9}" for v in row))
    for name, s in d["slices"].items():
        print(f"  slice {name:<14} n {s['n']:>4}  kappa {fmt(s['kappa']):>6}  CI [{fmt(s['ci'][0], 2)}, "
              f"{fmt(s['ci'][1], 2)}]  agreement {fmt(s['raw_agreement'], 2)}")
    if d["holdout"]:
        h = d["holdout"]
        print(f"  locked holdout (reported, never decided on): kappa {fmt(h['kappa'])} on {h['n']} items")
    if d.get("bias"):
        for line in format_bias(d["bias"]):
            print(f"  {line}")
    rule = d["rule"]
    print(f"  rule: {rule['gate_on'].replace('_', ' ')} >= {rule['threshold']} on at least {rule['min_items']} items"
          + (f"; every slice too (at least {rule['min_items_per_slice']} items each)" if rule["per_slice"] else ""))
    print(f"GATE {d['decision'].upper()}: {d['reason']}")


def gate_settings(args, cfg: RunConfig) -> CalibrationConfig:
    """The config's calibration section with each flag the command line gave on top (checked like the config)."""
    given = {"threshold": args.threshold, "min_items": args.min_items, "annotators": args.annotators,
             "gate_on": args.gate_on, "per_slice": args.per_slice or None, "slices": args.slice,
             "min_items_per_slice": args.min_items_per_slice, "bootstrap_resamples": args.resamples}
    return dataclasses.replace(cfg.calibration, override=args.override, override_reason=args.override_reason,
                               **{k: v for k, v in given.items() if v is not None})


def anchor_set_of(store, args, cfg: RunConfig) -> str:
    """``--anchor-set``, else the config's ``calibration.anchor_set`` (a file is imported once), else the newest."""
    if args.anchor_set or not cfg.calibration.anchor_set:
        return default_set(store, args.anchor_set)
    return resolve_anchor_set(store, cfg.calibration.anchor_set, cfg.resolve, cfg.calibration.holdout_fraction)


def cmd_kappa(args) -> int:
    cfg = load_config(args.config) if args.config else RunConfig()
    gate = gate_settings(args, cfg)
    if not args.rubric and not cfg.rubric:
        raise ConfigError("--rubric", "is required: pass a rubric YAML file or stored version, or --config LOOP.yaml "
                                      "with a rubric")
    with Store(args.store) as store:
        set_id = anchor_set_of(store, args, cfg)
        rubric = load_rubric_arg(store, args.rubric) if args.rubric else None
        project = Project.from_config(cfg, rubric)
        try:
            with project.open(store, judge=args.judge) as parts:
                result = kappa_gate(store, parts.judge, project.rubric, set_id, threshold=gate.threshold,
                                    min_items=gate.min_items, annotators=gate.annotators, override=gate.override,
                                    override_reason=gate.override_reason, slices=gate.slices, seed=args.seed,
                                    n_resamples=gate.bootstrap_resamples, reuse_verdicts=not args.rejudge,
                                    record=not args.no_record, gate_on=gate.gate_on, per_slice=gate.per_slice,
                                    min_items_per_slice=gate.min_items_per_slice, limit=args.limit,
                                    report_holdout=args.include_holdout, swap_orders=not args.no_swap)
        except ConfigError as err:
            if err.field_path == "verifier.kind" and not args.config:
                raise ConfigError("--config", f"{err.problem.split(':')[0]}: pass --config LOOP.yaml (its verifier "
                                              "section)") from None
            raise
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print_gate(result)
    return 0 if result.passed else 1


def add_commands(subparsers) -> None:
    """Register ``kappa`` on the main parser's subparsers."""
    p = subparsers.add_parser("kappa", help="judge-label Cohen's kappa on the non-holdout anchors, and the gate",
                              description=__doc__.split("\n\n")[-1].strip())
    p.add_argument("--judge", required=True, help="judge name: verifier, stub, biased, ...")
    p.add_argument("--rubric", help="rubric YAML file, or a stored rubric version (prefix); default: the config's "
                                    "rubric")
    p.add_argument("--config", help="loop YAML: its verifier, judge options and calibration section (anchor set, "
                                    "annotators, threshold, rule) are used; the flags below override them")
    p.add_argument("--anchor-set", help="anchor set id (default: the config's calibration.anchor_set, else the "
                                        "newest set)")
    p.add_argument("--slice", action="append", help="only this slice (repeatable)")
    p.add_argument("--annotators", choices=ANNOTATOR_MODES,
                   help="whose labels count: human, oracle, any (default: the config's, else human)")
    p.add_argument("--threshold", type=float, help=f"gate threshold (default: the config's, else {DEFAULT_THRESHOLD})")
    p.add_argument("--gate-on", choices=GATE_ON,
                   help="what must clear the threshold: lower_bound (kappa's 95%% CI lower bound) or point (kappa); "
                        "default: the config's, else lower_bound")
    p.add_argument("--min-items", type=int, help=f"fewest labelled items (default: the config's, else "
                                                 f"{DEFAULT_MIN_ITEMS})")
    p.add_argument("--per-slice", action="store_true", help="every slice must pass on its own too")
    p.add_argument("--min-items-per-slice", type=int, help="with --per-slice: fewest labelled items per slice")
    p.add_argument("--limit", type=positive_int, metavar="N", help="judge only a seeded, slice-stratified sample of N items "
                                                         "(a quick, cheap first measurement)")
    p.add_argument("--include-holdout", action="store_true",
                   help="also judge the locked holdout and report its kappa (it never decides); off by default, so "
                        "only the items the gate decides on cost judge calls")
    p.add_argument("--no-swap", action="store_true",
                   help="do not ask the items again with A and B swapped: half the judge calls, no position-flip rate")
    p.add_argument("--seed", type=int, default=0, help="bootstrap and sampling seed")
    p.add_argument("--resamples", type=int, help="bootstrap resamples (default: the config's, else 1000)")
    p.add_argument("--override", action="store_true", help="pass a blocked gate (recorded; needs --override-reason)")
    p.add_argument("--override-reason")
    p.add_argument("--rejudge", action="store_true", help="judge again instead of reusing stored verdicts")
    p.add_argument("--no-record", action="store_true", help="do not store a kappa report")
    p.add_argument("--json", action="store_true", help="print the gate result as JSON")
    store_option(p)
    p.set_defaults(func=cmd_kappa)
