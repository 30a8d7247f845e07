"""Label: blind pairwise labelling of anchor pairs, one at a time, keyboard-friendly.

The annotator sees the prompt and two responses on sides drawn per (annotator, item), never a judge verdict or another
annotator's label, with the words that differ marked and the project's rubric beside them as guidelines. The last
label can be undone (the same pair comes back). An admin may split a set into per-annotator queues with an overlap
target; an annotator's assigned items then come first. Model text is shown as text, code blocks or escaped panes,
never rendered as HTML or Markdown.
"""

import streamlit as st

from rlaif.anchors import ImportOptions, import_anchor_file, record_label
from rlaif.anchors.labelling import assign_queues, next_item, queue_progress, to_screen, undo_last_label
from rlaif.workbench.evidence import guidelines_html, project_rubric
from rlaif.workbench.evidence_view import show_texts
from rlaif.workbench.page import page_context
from rlaif.workbench.projects import project_anchor_files

wb = page_context("label", "Your role may not label.")
store, me = wb.store, wb.labeller
st.title("Label")

sets = store.anchors.list_sets()
if wb.can("manage_anchors"):
    files = project_anchor_files(wb.project_path)
    with st.expander("Import an anchor set", expanded=not sets):
        path = st.selectbox("Anchor file", files, format_func=lambda p: p.name) if files else None
        mapping = st.text_input(
            "Label columns", placeholder="ana_label=ana, bo_label=bo, winner",
            help="Columns holding labels that are not named label_<annotator>, as COLUMN=ANNOTATOR (or COLUMN to "
                 "name the annotator after it), comma-separated. A file with unmapped label-like columns is refused "
                 "so that no label is lost.")
        if st.button("Import", disabled=path is None):
            try:
                specs = [spec.strip() for spec in mapping.replace("\n", ",").split(",") if spec.strip()]
                result = import_anchor_file(store, path, options=ImportOptions(label_columns=specs))
                counts = ", ".join(f"{who} {n}" for who, n in result.label_counts.items()) or "none"
                st.success(f"{'Imported' if result.created else 'Already imported:'} {result.n_items} items "
                           f"({result.n_holdout} locked in the holdout). Labels: {counts}.")
            except ValueError as err:  # AnchorImportError and a malformed mapping alike
                st.error(str(err))
            sets = store.anchors.list_sets()
if not sets:
    st.info("No anchor set to label yet. An admin imports one here, or samples one from a run.")
    st.stop()

names = {s["anchor_set_id"]: f"{s['name']} · {s['n_items']} items" for s in sets}
set_id = st.selectbox("Anchor set", list(names), format_func=names.get, key="l.set")
if wb.can("manage_anchors"):
    with st.expander("Per-annotator queues"):
        plan = store.anchors.assignments(set_id)
        if plan:
            load = {}
            for a in plan:
                load[a["annotator"]] = load.get(a["annotator"], 0) + 1
            st.caption(f"Current plan: each item to {plan[0]['overlap']} annotator(s) · "
                       + ", ".join(f"{who} {n}" for who, n in load.items()))
        q1, q2 = st.columns([3, 1])
        who = q1.text_input("Annotators", key="l.q.who", placeholder="ana, ben, cy",
                            help="Comma-separated names, as each annotator types them in 'Labelling as'.")
        overlap = q2.number_input("Labels per item", 1, 20, 2, key="l.q.k",
                                  help="How many annotators label each item (the overlap agreement needs).")
        if st.button("Assign queues", disabled=not who.strip()):
            try:
                counts = assign_queues(store, set_id, who.split(","), int(overlap), assigned_by=me)
                st.success("Assigned: " + ", ".join(f"{name} {n} items" for name, n in counts.items()))
            except (ValueError, KeyError) as err:
                st.error(str(err))
pair_col, guide_col = st.columns([3, 1])  # the rubric's guidelines beside the pair and its buttons
view, controls = pair_col.container(), pair_col.container()
item = next_item(store, set_id, annotator=me, prefer=st.session_state.get("l.back"))
st.session_state["l.item"] = item.item_id if item else None


def save(presentation, choice: str) -> None:
    """Runs before the rerun, with the pair whose buttons were pressed (by click or key)."""
    done = st.session_state.setdefault("l.done", set())
    if presentation.item_id in done:
        return  # a second press on a pair this session already labelled (a double click), not a new label
    record_label(store, presentation, choice, note=st.session_state.get(f"l.note.{presentation.item_id}") or None)
    if choice != "skip":
        done.add(presentation.item_id)
    st.session_state["l.last"] = f"{choice} saved for the previous pair"
    st.session_state.pop("l.back", None)


def undo() -> None:
    """Take back this annotator's last label on the set and show that pair again."""
    undone = undo_last_label(store, set_id, me)
    if undone is None:
        st.session_state["l.last"] = "nothing to undo"
        return
    st.session_state.setdefault("l.done", set()).discard(undone["item_id"])
    st.session_state["l.back"] = undone["item_id"]
    shown = {"left": "left is better", "right": "right is better", "tie": "tie", "skip": "skip"}[
        to_screen(undone["label"], undone["shown_left"] or "a")]
    st.session_state["l.last"] = f"undid your last label ({shown}): that pair is shown again"


# The controls are registered BEFORE the pair is drawn (the view container sits above them on screen): whenever a
# pair is visible its own buttons already exist, so a press that lands mid-rerun labels the pair that was shown.
if item is not None:
    with controls:
        st.text_input("Note (optional)", key=f"l.note.{item.item_id}", placeholder="why, in a few words")
        b1, b2, b3, b4 = st.columns(4)
        for col, label, choice, key in ((b1, "◀ Left is better", "left", "1"), (b2, "Tie", "tie", "2"),
                                        (b3, "Right is better ▶", "right", "3"), (b4, "Skip", "skip", "S")):
            col.button(label, key=f"l.{choice}.{item.item_id}", shortcut=key, on_click=save, args=(item, choice),
                       width="stretch")
if store.labels.last_label(set_id, me) is not None:
    with controls:
        st.button("↶ Undo last label", key="l.undo", shortcut="U", on_click=undo)
with controls:
    st.caption("Keys: 1 = left better · 2 = tie · 3 = right better · S = skip · U = undo the last label. "
               "Sides are shuffled per annotator.")

with view:
    mine = store.labels.latest(set_id, kinds=("human",), annotator=me)
    done = sum(r["label"] != "skip" for r in mine)
    n_items = next(s["n_items"] for s in sets if s["anchor_set_id"] == set_id)
    st.progress(done / n_items if n_items else 0.0,
                text=f"{me}: {done} of {n_items} labelled · {sum(r['label'] == 'skip' for r in mine)} skipped")
    queue = queue_progress(store, set_id, me)
    if queue:
        st.progress(queue[0] / queue[1], text=f"{queue[0]} of {queue[1]} assigned to {me} done"
                    + (" · your assigned items come first" if queue[0] < queue[1] else " · all assigned done"))
    if "l.last" in st.session_state:
        st.caption(st.session_state.pop("l.last"))
    if item is None:
        st.success("Everything in this set is labelled. Thank you!")
        st.stop()
    st.caption("Prompt")
    st.text(item.prompt)  # model and user text: plain text and escaped panes, never HTML or Markdown
    show_texts(st, item.left, item.right, ("Left", "Right"),
               highlight=st.toggle("Highlight differences", True, key="l.diff"))
    rubric = project_rubric(wb.project_path)
    if rubric is None:
        guide_col.caption("Guidelines: the project's rubric could not be read.")
    else:
        guide_col.html(guidelines_html(rubric))
