"""``rlaif kappa``: judge-label Cohen's kappa on the non-holdout anchors, and the calibration gate's decision.

    rlaif kappa --judge verifier --rubric sample_data/harbor_sql/rubric.yaml --config sample_data/harbor_sql/loop.yaml \
        --annotators oracle

The judge is the project's (``--config``: its verifier, and its judge options when ``--judge`` names the config's
judge). Exits 0 when the gate passes and 1 when it blocks, so scripts can gate on it.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlaif.anchors.defaults import ANNOTATOR_MODES, DEFAULT_MIN_ITEMS, DEFAULT_THRESHOLD
from rlaif.anchors.gate import kappa_gate
from rlaif.cli.anchors import default_set
from rlaif.cli.common import fmt, store_option
from rlaif.config import ConfigError, RunConfig, load_config
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


def print_gate(result) -> None:
    d = result.to_dict()
    ci = d["ci"]
    print(f"judge {d['judge_id']} / rubric {d['rubric_version']} on {d['anchor_set_id']} ({d['annotators']} labels)")
    print(f"  kappa {fmt(d['kappa'])}  95% CI [{fmt(ci[0])}, {fmt(ci[1])}]  n {d['n']}  raw agreement "
          f"{fmt(d['raw_agreement'])}  invalid verdicts {d['n_invalid']}")
    two = d["two_class"]
    print(f"  ties excluded (A/B only): kappa {fmt(two['kappa'])} on {two['n']} items")
    labels = d["confusion"]["labels"]
    print("  confusion (rows: labels, columns: judge): " + "  ".join(labels))
    for name, row in zip(labels, d["confusion"]["matrix"]):
        print(f"    {name:<8} " + " ".join(f"{v:>6}" for v in row))
    for name, s in d["slices"].items():
        print(f"  slice {name:<14} n {s['n']:>4}  kappa {fmt(s['kappa']):>6}  CI [{fmt(s['ci'][0], 2)}, "
              f"{fmt(s['ci'][1], 2)}]  agreement {fmt(s['raw_agreement'], 2)}")
    if d["holdout"]:
        h = d["holdout"]
        print(f"  locked holdout (reported, never decided on): kappa {fmt(h['kappa'])} on {h['n']} items")
    print(f"GATE {d['decision'].upper()}: {d['reason']}")


def cmd_kappa(args) -> int:
    with Store(args.store) as store:
        set_id = default_set(store, args.anchor_set)
        rubric = load_rubric_arg(store, args.rubric)
        project = Project.from_config(load_config(args.config) if args.config else RunConfig(), rubric)
        try:
            with project.open(store, judge=args.judge) as parts:
                result = kappa_gate(store, parts.judge, rubric, set_id, threshold=args.threshold,
                                    min_items=args.min_items, annotators=args.annotators, override=args.override,
                                    override_reason=args.override_reason, slices=args.slice, seed=args.seed,
                                    n_resamples=args.resamples, reuse_verdicts=not args.rejudge,
                                    record=not args.no_record)
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
    store_option(p)
    p.set_defaults(func=cmd_kappa)
