"""Calibration: judge–human kappa per judge × rubric version × slice with CIs, the gate, the judge's bias figures,
confusion, disagreements, inter-annotator agreement, and the locked holdout shown apart (never decided on)."""

import streamlit as st

from rlaif.anchors import adjudicate_majority, anchor_set_stats, kappa_gate
from rlaif.anchors.defaults import ANNOTATOR_MODES, GATE_ON
from rlaif.judges import JUDGE_NAMES
from rlaif.rubric import DEFAULT_RUBRIC, load_rubric, rubric_from_dict
from rlaif.workbench.calibration_view import (
    MIN_ITEMS_FOR_KAPPA,
    holdout_metrics,
    kappa_note,
    kappa_rows,
    pct,
    report_note,
    report_rows,
)
from rlaif.workbench.charts import confusion_figure
from rlaif.workbench.fmt import fmt_id, fmt_num
from rlaif.workbench.page import page_context
from rlaif.workbench.projects import kappa_field, project_judge, run_config, spends_api
from rlaif.workbench.tables import anchor_disagreements, code_language
from store.secrets_guard import redact_secrets

wb = page_context("calibrate", "Your role may not see calibration results: labelling stays blind to verdicts.")
store, cfg = wb.store, run_config(wb.project_path)
st.title("Calibration")
sets = store.anchors.list_sets()
if not sets:
    st.info("No anchor set yet: import one on the Label page.")
    st.stop()
names = {s["anchor_set_id"]: f"{s['name']} · {s['n_items']} items" for s in sets}
c1, c2 = st.columns([3, 1])
set_id = c1.selectbox("Anchor set", list(names), format_func=names.get, key="c.set")
reports = store.anchors.kappa_reports(set_id, limit=50)
# the selection starts at the labels the last decision used, so the banner and the tables below agree from the start;
# choosing other labels shows the last decision made on those (or says there is none)
default_who = reports[0]["annotators"] if reports else cfg.calibration.annotators
annotators = c2.selectbox("Labels that count", ANNOTATOR_MODES, key="c.who",
                          index=ANNOTATOR_MODES.index(default_who))

# ---- the gate -------------------------------------------------------------------------------------------------------
st.subheader("Gate")
rubrics = {"project file": load_rubric(cfg.resolve(cfg.rubric)) if cfg.rubric and cfg.resolve(cfg.rubric).is_file()
           else DEFAULT_RUBRIC}
rubrics.update({f"{v['name']} · {fmt_id(v['rubric_version'])}": rubric_from_dict(v["body"])
                for v in store.rubrics.list()})
g1, g2, g3, g4, g5 = st.columns(5)
judge_name = g1.selectbox("Judge", list(dict.fromkeys([cfg.judge.name, *JUDGE_NAMES])), key="c.judge")
rubric = rubrics[g2.selectbox("Rubric version", list(rubrics), key="c.rubric")]
threshold = g3.number_input("Kappa threshold", -1.0, 1.0, float((kappa_field(cfg) or (None, 0.72))[1]), 0.01)
gate_on = g4.selectbox("Gate on", GATE_ON, index=GATE_ON.index(cfg.calibration.gate_on), key="c.gate_on",
                       help="lower_bound: kappa's 95% CI lower bound must clear the threshold (the anchors must show "
                            "agreement); point: kappa itself.")
min_items = g5.number_input("Min labelled items", 1, 10_000, cfg.calibration.min_items)
may_spend = not spends_api(cfg, judge_name) or wb.can("spend_api")
if st.button("Measure and decide", type="primary", disabled=not may_spend):
    try:
        with project_judge(cfg, judge_name, store=store) as judge:
            kappa_gate(store, judge, rubric, set_id, threshold=threshold, min_items=min_items, annotators=annotators,
                       gate_on=gate_on, per_slice=cfg.calibration.per_slice,
                       min_items_per_slice=cfg.calibration.min_items_per_slice, swap_orders=True)
    except (ValueError, RuntimeError, OSError) as err:
        st.error(f"The judge could not run: {redact_secrets(str(err))}")
    reports = store.anchors.kappa_reports(set_id, limit=50)
shown = [r for r in reports if r["annotators"] == annotators]
if reports and not shown:
    st.info(f"No gate decision on {annotators} labels yet; the last one was made on {reports[0]['annotators']} "
            "labels (choose those under \"Labels that count\" to see it).")
if shown:
    last = shown[0]["body"]
    status = {"passed": st.success, "blocked": st.error, "overridden": st.warning}[last["decision"]]
    status(f"**{last['decision'].upper()}** · {last['judge_id']} · rubric {fmt_id(last['rubric_version'])} · "
           f"{last['annotators']} labels · {last['reason']}")
    m1, m2, m3, m4 = st.columns(4)
    ci = last["ci"]
    degenerate = last.get("degenerate")
    decides_on = "it" if last.get("rule", {}).get("gate_on") == "point" else "its CI lower bound"
    m1.metric("Kappa (tuning)", "—" if last["kappa"] is None or degenerate else f"{last['kappa']:.3f}",
              help="Cohen's kappa on the non-holdout anchors. " + (
                  f"Not a measurement here: {last['reason']}" if degenerate else f"The gate decides on {decides_on}."))
    m2.metric("95% CI", "—" if None in ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]")
    m3.metric("Items", last["n"])
    m4.metric("Invalid verdicts", last["n_invalid"])
    note = report_note(last)
    if note:
        st.warning(f"Kappa {fmt_num(last['kappa'])} on {last['n']} items means little or nothing: {note}.")
    bias = last.get("bias") or {}
    if bias:
        b1, b2, b3, b4 = st.columns(4)
        b1.metric("Position flips", pct(bias["flip_rate"]), help=f"Verdicts that changed when A and B were swapped, "
                  f"of {bias['n_both_orders']} items asked both ways.")
        b2.metric("First shown wins", pct(bias["first_shown_share"]), help=f"Of {bias['n_decisive']} decisive "
                  "verdicts, both orders pooled; 50% is no position preference.")
        b3.metric("Longer answer wins", pct(bias["longer_share"]), help=f"Of {bias['n_length_differs']} decisive "
                  "verdicts on answers of different length.")
        b4.metric("Invalid rate", pct(bias["invalid_rate"]), help=f"Of {bias['n_verdicts']} verdicts asked.")
        for warning in bias["warnings"]:
            st.warning(warning)
    left, right = st.columns(2)
    conf = last["confusion"]
    left.plotly_chart(confusion_figure(conf["labels"], conf["matrix"]), key="c.confusion")
    with right:
        st.caption("Holdout (locked; reported, never used to decide or tune)")
        held = holdout_metrics(last.get("holdout"), last.get("rule") or {}, last["threshold"])
        if held is None:
            st.info("The holdout was not measured for this decision.")
        else:
            h1, h2 = st.columns(2)
            h1.metric("Holdout kappa", held["kappa"])
            h2.metric("Holdout 95% CI", held["ci"])
            h3, h4 = st.columns(2)
            h3.metric("Holdout items", held["n"])
            h4.metric("Holdout agreement", held["agreement"], help="Share of items where the judge and the label agree.")
            st.metric("By the gate's rule", held["decision"], help="Reported only: the holdout never decides.")
            if held["note"]:
                st.caption(f"Holdout kappa means little or nothing: {held['note']}.")
    st.caption("Gate decisions on this anchor set, newest first")
    st.dataframe(report_rows(reports), hide_index=True, width="stretch",
                 column_config={"rubric": st.column_config.TextColumn(help="First 12 characters; the full version "
                                                                           "is the last column"),
                                "rubric version (full)": st.column_config.TextColumn(width="small")})

# ---- kappa table ----------------------------------------------------------------------------------------------------
st.subheader("Kappa per judge × rubric version × slice")
KAPPA_COLUMNS = {"rubric": st.column_config.TextColumn(help="First 12 characters of the rubric version (the full one "
                                                            "is in the decisions table above)"),
                 "note": st.column_config.TextColumn(width="large", help="Why this kappa means little or nothing: one "
                                                     "class of labels, mostly ties, one answer from the judge, or "
                                                     f"fewer than {MIN_ITEMS_FOR_KAPPA} items"),
                 "flips": st.column_config.TextColumn(help="Position flips: verdicts that changed when A and B were "
                                                           "swapped (where both orders were asked)")}
for split, caption in (("tuning", None), ("holdout", "Holdout, shown apart: never used for tuning or the gate.")):
    if caption:
        st.caption(caption)
    rows = kappa_rows(store, set_id, annotators=annotators, split=split)
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", column_config=KAPPA_COLUMNS)
    else:
        st.info(f"No {split} verdicts on items with {annotators} labels yet: label items or run the gate.")

# ---- disagreements --------------------------------------------------------------------------------------------------
st.subheader("Disagreements")
if shown:
    rows = anchor_disagreements(store, set_id, shown[0]["judge_id"], shown[0]["rubric_version"],
                                annotators=annotators)
    st.caption(f"{len(rows)} tuning items where {shown[0]['judge_id']} disagrees with the labels; label these "
               "first (the Label page queues disagreements first).")
    st.dataframe([{**{k: v for k, v in r.items() if k not in ("rationale", "confidence")},
                   "confidence": fmt_num(r["confidence"])} for r in rows], hide_index=True, width="stretch")
    if rows:
        pick = st.selectbox("Open item", [r["item_id"] for r in rows], key="c.item")
        row, item = next(r for r in rows if r["item_id"] == pick), store.anchors.item(pick)
        st.text(item["prompt"])
        a, b = st.columns(2)
        for col, side, text in ((a, "A", item["response_a"]), (b, "B", item["response_b"])):
            col.caption(f"Response {side}" + (" · label" if row["label"] == side else "")
                        + (" · judge" if row["judge"] == side else ""))
            col.code(text, language=code_language(text), wrap_lines=True)
        st.caption("Judge rationale")
        st.text(row["rationale"] or "—")
else:
    st.caption("Run the gate once to list the judge's disagreements.")

# ---- annotators -----------------------------------------------------------------------------------------------------
st.subheader("Annotators")
stats = anchor_set_stats(store, set_id)
st.dataframe(stats["annotators"], hide_index=True)
st.caption(f"{stats['human_coverage']['labelled_1+']} items labelled by a person, "
           f"{stats['human_coverage']['labelled_2+']} by two or more · "
           f"{stats['unresolved_conflicts']} unresolved conflicts · "
           f"holdout {stats['n_holdout']} of {stats['n_items']}")
adj, split = stats["adjudication"], stats["label_split"]
a1, a2 = st.columns(2)
a1.dataframe([{"items with 2+ labels": adj["n"], "unanimous": adj["unanimous"], "majority": adj["majority"],
               "conflicts": adj["conflicts"], "overridden": adj["overridden"]}], hide_index=True)
a2.dataframe([{"split": name, **counts} for name, counts in split.items()], hide_index=True)
iaa = stats["inter_annotator"]
if iaa:
    st.dataframe([{"annotators": " × ".join(p["annotators"]), "n": p["n"], "kappa": fmt_num(p["kappa"]),
                   "raw agreement": pct(p["raw_agreement"]), "note": kappa_note(p["n"], p["kappa"], short=True) or ""}
                  for p in iaa["pairwise"]], hide_index=True)
    f1, f2 = st.columns(2)
    if iaa["fleiss_kappa"] is not None:
        f1.metric("Fleiss' kappa", f"{iaa['fleiss_kappa']:.3f}", help=f"over {iaa['fleiss_n']} items")
    alpha = iaa["krippendorff_alpha"]
    ci = "—" if None in alpha["ci"] else f"[{alpha['ci'][0]:.2f}, {alpha['ci'][1]:.2f}]"
    f2.metric("Krippendorff's alpha", "—" if alpha["alpha"] is None else f"{alpha['alpha']:.3f}",
              help=f"Nominal, missing labels allowed; 95% CI {ci} over {alpha['n']} items with 2+ labels.")
    few = kappa_note(alpha["n"] or 0, alpha["alpha"])  # the same item-count rule as kappa: few items, little meaning
    if alpha["alpha"] is not None and few:
        f2.caption(few.replace("kappa", "alpha"))
if wb.can("manage_anchors") and st.button("Record majority labels (adjudicate)"):
    summary = adjudicate_majority(store, set_id, adjudicator=f"majority:{wb.labeller}")
    st.success(f"Recorded {len(summary.recorded)} majorities; {len(summary.conflicts)} conflicts need an adjudicator.")
