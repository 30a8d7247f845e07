"""Rubrics: edit criteria and principles, save a new content-hashed version, diff versions, preview the judge prompt,
and re-judge a sample of pairs under two versions to see which verdicts flip."""

import streamlit as st

from rlaif.judges import JUDGE_NAMES, Comparison
from rlaif.judges.prompting import render_judge_prompt
from rlaif.rubric import DEFAULT_RUBRIC, RubricError, load_rubric, rubric_from_dict
from rlaif.verifiers import CRITERION_NAMES
from rlaif.workbench.page import page_context
from rlaif.workbench.projects import project_judge, run_config, spends_api
from rlaif.workbench.rubric_edit import diff_rubrics, rejudge_flips, sample_comparisons
from store.secrets_guard import redact_secrets

wb = page_context("edit_rubric", "Your role may not edit rubrics.")
store, cfg = wb.store, run_config(wb.project_path)
st.title("Rubrics")
if "r.saved" in st.session_state:
    st.success(f"Saved version {st.session_state.pop('r.saved')[:12]}.")

FILE = "project file"
rubrics = {FILE: load_rubric(cfg.resolve(cfg.rubric)) if cfg.rubric and cfg.resolve(cfg.rubric).is_file()
           else DEFAULT_RUBRIC}
versions = store.rubrics.list()
rubrics.update({v["rubric_version"]: rubric_from_dict(v["body"]) for v in versions})
label = {FILE: f"{FILE} ({rubrics[FILE].name})",
         **{v["rubric_version"]: f"{v['name']} · {v['rubric_version'][:12]} · {v['created_at']:%Y-%m-%d %H:%M}"
            for v in versions}}

# ---- edit -----------------------------------------------------------------------------------------------------------
st.subheader("Edit")
base_key = st.selectbox("Start from", list(rubrics), format_func=label.get, key="r.base")
base, k = rubrics[base_key], f"r.{base_key[:12]}"
name = st.text_input("Rubric name", base.name, key=f"{k}.name")
description = st.text_area("What the rubric is for", base.description, key=f"{k}.about", height=68)
st.session_state.setdefault(f"{k}.n", len(base.criteria))
criteria = []
for i in range(st.session_state[f"{k}.n"]):
    c = base.criteria[i] if i < len(base.criteria) else None
    cols = st.columns([2, 5, 1, 1, 2, 1], vertical_alignment="bottom")
    row = {"name": cols[0].text_input("Criterion", c.name if c else "", key=f"{k}.{i}.name"),
           "description": cols[1].text_input("Description", c.description if c else "", key=f"{k}.{i}.desc"),
           "weight": cols[2].number_input("Weight", 0.0, value=c.weight if c else 1.0, key=f"{k}.{i}.w"),
           "hard": cols[3].checkbox("Hard", c.hard if c else False, key=f"{k}.{i}.hard"),
           "verifier": cols[4].selectbox("Verifier", [None, *sorted(CRITERION_NAMES)], key=f"{k}.{i}.ver",
                                         index=[None, *sorted(CRITERION_NAMES)].index(c.verifier if c else None),
                                         format_func=lambda v: "none (LLM-judged)" if v is None else v)}
    if not cols[5].checkbox("Remove", key=f"{k}.{i}.rm") and row["name"].strip():
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
    st.caption(f"Draft version {draft.version[:12]}" + (" (same as the base)" if unchanged else ""))
    if st.button("Save as new version", type="primary", disabled=unchanged):
        st.session_state["r.saved"] = store.rubrics.save(draft.name, draft.to_dict(),
                                                         parent_version=None if base_key == FILE else base_key)
        st.rerun()
    rubrics["draft"], label["draft"] = draft, "draft (unsaved)"

# ---- preview --------------------------------------------------------------------------------------------------------
with st.expander("Preview the judge prompt"):
    runs = store.runs.list(limit=50)
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
st.dataframe(diff.rows(), hide_index=True)
if diff.principles_added or diff.principles_removed:
    st.text("\n".join([f"+ {p}" for p in diff.principles_added] + [f"- {p}" for p in diff.principles_removed]))
st.dataframe([{"old": a, "new": b, "": "" if tag == "equal" else tag} for a, b, tag in diff.side_by_side],
             hide_index=True)

st.subheader("Which verdicts flip?")
if not runs:
    st.info("Re-judging needs stored pairs: start a run first.")
    st.stop()
c1, c2, c3 = st.columns(3)
run_id = c1.selectbox("Pairs from run", [r["run_id"] for r in runs], key="r.run")
judge_name = c2.selectbox("Judge", list(dict.fromkeys([cfg.judge.name, *JUDGE_NAMES])), key="r.judge")
sample = c3.number_input("Sample size", 1, 500, 20, key="r.sample")
may_spend = not spends_api(cfg, judge_name) or wb.can("spend_api")
if st.button("Re-judge under both versions", disabled=not may_spend):
    try:
        with project_judge(cfg, judge_name, store=store) as judge:
            results = rejudge_flips(judge, sample_comparisons(store, run_id, sample=sample), rubrics[old_key],
                                    rubrics[new_key])
    except (ValueError, RuntimeError, OSError) as err:
        st.error(f"The judge could not run: {redact_secrets(str(err))}")
        st.stop()
    flipped = [r for r in results if r.flipped]
    st.metric("Flipped verdicts", f"{len(flipped)} of {len(results)}")
    st.dataframe([{"pair": r.pair_id[:12], "prompt": r.prompt, "old": r.winner_old, "new": r.winner_new,
                   "old rationale": r.rationale_old, "new rationale": r.rationale_new} for r in flipped],
                 hide_index=True)
