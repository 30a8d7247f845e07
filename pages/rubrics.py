"""Rubrics: edit criteria and principles, save a new content-hashed version, diff versions (as the judge prompt shows
them), preview the judge prompt, and re-judge a sample of pairs under two versions to see which verdicts flip."""

import streamlit as st

from rlaif.judges import JUDGE_NAMES, Comparison
from rlaif.judges.prompting import render_judge_prompt
from rlaif.rubric import DEFAULT_RUBRIC, RubricError, load_rubric, rubric_from_dict
from rlaif.verifiers import CRITERION_NAMES
from rlaif.workbench.fmt import fmt_id, fmt_usd
from rlaif.workbench.page import page_context
from rlaif.workbench.projects import run_config
from rlaif.workbench.rubric_edit import (
    API_JUDGES,
    diff_rubrics,
    judge_options,
    picker_label,
    rejudge_cost,
    rejudge_flips,
    rejudge_judge,
    rejudge_spec,
    rubric_reading,
    sample_comparisons,
)
from store.secrets_guard import redact_secrets

wb = page_context("edit_rubric", "Your role may not edit rubrics.")
store, cfg = wb.store, run_config(wb.project_path)
st.title("Rubrics")
if "r.saved" in st.session_state:
    st.success(f"Saved version {fmt_id(st.session_state.pop('r.saved'))}.")

FILE = "project file"
rubrics = {FILE: load_rubric(cfg.resolve(cfg.rubric)) if cfg.rubric and cfg.resolve(cfg.rubric).is_file()
           else DEFAULT_RUBRIC}
versions = store.rubrics.list()
rubrics.update({v["rubric_version"]: rubric_from_dict(v["body"]) for v in versions})
label = {FILE: f"{FILE} ({rubrics[FILE].name})",
         **{v["rubric_version"]: f"{v['name']} · {fmt_id(v['rubric_version'])} · {v['created_at']:%Y-%m-%d %H:%M}"
            for v in versions}}
VERIFIERS = [None, *sorted(CRITERION_NAMES)]

# ---- edit -----------------------------------------------------------------------------------------------------------
st.subheader("Edit")
base_key = st.selectbox("Start from", list(rubrics), format_func=label.get, key="r.base")
base, k = rubrics[base_key], f"r.{base_key[:12]}"
name = st.text_input("Rubric name", base.name, key=f"{k}.name")
description = st.text_area("What the rubric is for", base.description, key=f"{k}.about", height=68)
st.session_state.setdefault(f"{k}.n", len(base.criteria))
removed = st.session_state.setdefault(f"{k}.removed", set())
criteria = []
for i in range(st.session_state[f"{k}.n"]):
    if i in removed:
        continue
    c = base.criteria[i] if i < len(base.criteria) else None
    with st.container(border=True):
        cols = st.columns([3, 1, 1, 3, 1], vertical_alignment="bottom")
        row = {"name": cols[0].text_input("Criterion", c.name if c else "", key=f"{k}.{i}.name"),
               "weight": cols[1].number_input("Weight", 0.0, value=c.weight if c else 1.0, step=0.5, key=f"{k}.{i}.w"),
               "hard": cols[2].checkbox("Hard", c.hard if c else False, key=f"{k}.{i}.hard",
                                        help="A hard requirement outweighs every soft criterion."),
               "verifier": cols[3].selectbox("Verifier", VERIFIERS, key=f"{k}.{i}.ver",
                                             index=VERIFIERS.index(c.verifier if c else None),
                                             format_func=lambda v: "none (LLM-judged)" if v is None else v)}
        cols[4].button("Remove", key=f"{k}.{i}.rm", on_click=removed.add, args=(i,), width="stretch")
        row["description"] = st.text_area("Description", c.description if c else "", key=f"{k}.{i}.desc", height=68)
    if row["name"].strip():
        criteria.append(row)
st.button("Add criterion", on_click=lambda: st.session_state.update({f"{k}.n": st.session_state[f"{k}.n"] + 1}))
principles = st.text_area("Constitution principles (one per line)", "\n".join(base.principles), key=f"{k}.pr")
try:
    draft = rubric_from_dict({"name": name, "description": description, "criteria": criteria,
                              "principles": [p.strip() for p in principles.splitlines() if p.strip()]})
except RubricError as err:
    draft = None
    st.error(str(err))
if draft is not None:
    unchanged = draft.version == base.version and base_key != FILE
    st.caption(f"Draft version {fmt_id(draft.version)}" + (" (same as the base)" if unchanged else ""))
    if st.button("Save as new version", type="primary", disabled=unchanged):
        st.session_state["r.saved"] = store.rubrics.save(draft.name, draft.to_dict(),
                                                         parent_version=None if base_key == FILE else base_key)
        st.rerun()
    rubrics["draft"], label["draft"] = draft, "draft (unsaved)"

# ---- preview --------------------------------------------------------------------------------------------------------
runs = store.runs.list(limit=50)
with st.expander("Preview the judge prompt"):
    examples = sample_comparisons(store, runs[0]["run_id"], sample=1) if runs and runs[0]["status"] != "running" \
        else []
    example = examples[0][1] if examples else Comparison("How many orders were placed in 2023?",
                                                         "SELECT count(*) FROM v_orders WHERE year = 2023;",
                                                         "SELECT 1;")
    prompt = render_judge_prompt(example, draft or base)
    st.code(prompt.system, language=None, wrap_lines=True)
    st.code(prompt.user, language=None, wrap_lines=True)

# ---- diff and flips -------------------------------------------------------------------------------------------------
st.subheader("Compare two versions")
keys = list(rubrics)
c1, c2 = st.columns(2)
old_key = c1.selectbox("Old", keys, index=0, format_func=label.get, key="r.old")
new_key = c2.selectbox("New", keys, index=len(keys) - 1, format_func=label.get, key="r.new")
diff = diff_rubrics(rubrics[old_key], rubrics[new_key])
st.dataframe(diff.rows(), hide_index=True, width="stretch",
             column_config={"details": st.column_config.TextColumn(width="large")})
if diff.principles_added or diff.principles_removed:
    st.text("\n".join([f"+ {p}" for p in diff.principles_added] + [f"- {p}" for p in diff.principles_removed]))
st.caption("The rubric as the judge prompt shows it (weights and hard flags included), old beside new.")
st.dataframe([{"change": "" if tag == "equal" else tag, "old": a, "new": b} for a, b, tag in diff.side_by_side],
             hide_index=True, width="stretch", column_config={"change": st.column_config.TextColumn(width="small"),
                                                              "old": st.column_config.TextColumn(width="large"),
                                                              "new": st.column_config.TextColumn(width="large")})

st.subheader("Which verdicts flip?")
if not runs:
    st.info("Re-judging needs stored pairs: start a run first.")
    st.stop()


run_names = {r["run_id"]: f"{fmt_id(r['run_id'])} · {r['name']} · {r['status']}" for r in runs}
c1, c2, c3 = st.columns([3, 3, 1])
run_id = c1.selectbox("Pairs from run", list(run_names), format_func=run_names.get, key="r.run")
judge_name = c2.selectbox("Judge", list(dict.fromkeys([cfg.judge.name, *JUDGE_NAMES])), key="r.judge",
                          format_func=lambda judge: picker_label(cfg, judge))
sample = int(c3.number_input("Sample size", 1, 500, 20, key="r.sample"))
api = {}
if judge_name in API_JUDGES:
    given = judge_options(cfg, judge_name)
    a1, a2, a3 = st.columns([1, 2, 3])
    a1.text_input("Provider", judge_name, disabled=True, key="r.provider")
    api["model"] = a2.text_input("Model", given.get("model", ""), key=f"r.{judge_name}.model",
                                 placeholder="claude-haiku-4-5" if judge_name == "anthropic" else "gpt-4o-mini")
    api["base_url"] = a3.text_input("Base URL (optional)", given.get("base_url") or "", key=f"r.{judge_name}.url",
                                    placeholder="http://localhost:8000/v1 for an OpenAI-compatible server")
try:
    spec = rejudge_spec(cfg, judge_name, api)
except ValueError as err:
    spec = None
    st.error(redact_secrets(str(err)))
comparisons = sample_comparisons(store, run_id, sample=sample) if spec is not None else []
reads_text, reads = rubric_reading(spec) if spec is not None else (True, "")
if spec is not None:
    cost = rejudge_cost(spec, comparisons, rubrics[old_key], rubrics[new_key])
    st.caption(f"Cost estimate: {fmt_usd(cost.usd)}{' (upper bound)' if cost.upper_bound else ''} for "
               f"{2 * len(comparisons)} judge calls ({len(comparisons)} pairs x 2 versions) · {'; '.join(cost.notes)}")
    if not reads_text:
        st.caption(f"{judge_name} ignores the rubric's text. It reads {reads}.")
may_spend = spec is not None and (not cost.spends or wb.can("spend_api"))
if spec is not None and cost.spends and not wb.can("spend_api"):
    st.caption("Your role may not start a judge that spends API money.")
if st.button("Re-judge under both versions", disabled=not may_spend):
    bar = st.progress(0.0, text="Judging…")
    try:
        with rejudge_judge(cfg, spec, store) as judge:
            results = rejudge_flips(judge, comparisons, rubrics[old_key], rubrics[new_key], chunk=8,
                                    on_progress=lambda done, total: bar.progress(
                                        done / total, text=f"{done} of {total} verdicts"))
    except (ValueError, RuntimeError, OSError) as err:
        bar.empty()
        st.error(f"The judge could not run: {redact_secrets(str(err))}")
        st.stop()
    bar.empty()
    flipped = [r for r in results if r.flipped]
    st.metric("Flipped verdicts", f"{len(flipped)} of {len(results)}")
    if not reads_text:
        st.info(f"{judge_name} does not read the rubric's text (it reads {reads}), so an edit of wording, "
                "descriptions or principles cannot flip its verdicts; only what it reads can.")
    if flipped:
        st.dataframe([{"pair": fmt_id(r.pair_id), "prompt": r.prompt, "old": r.winner_old, "new": r.winner_new,
                       "old rationale": r.rationale_old, "new rationale": r.rationale_new} for r in flipped],
                     hide_index=True, width="stretch",
                     column_config={"pair": st.column_config.TextColumn(width="small", help="First 12 characters"),
                                    "old": st.column_config.TextColumn(width="small"),
                                    "new": st.column_config.TextColumn(width="small")})
    else:
        st.info(f"No verdict flipped: both versions pick the same winner on all {len(results)} pairs.")
