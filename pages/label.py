"""Label: blind pairwise labelling of anchor pairs, one at a time, keyboard-friendly.

The annotator sees the prompt and two responses on sides drawn per (annotator, item), never a judge verdict or another
annotator's label. Model text is shown as text/code blocks, never rendered as HTML or Markdown.
"""

import streamlit as st

from rlaif.anchors import ImportOptions, import_anchor_file, next_item, record_label
from rlaif.workbench.page import page_context
from rlaif.workbench.projects import project_anchor_files
from rlaif.workbench.tables import code_language

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
view, controls = st.container(), st.container()
item = next_item(store, set_id, annotator=me)


def save(presentation, choice: str) -> None:
    """Runs before the rerun, with the pair whose buttons were pressed (by click or key)."""
    done = st.session_state.setdefault("l.done", set())
    if presentation.item_id in done:
        return  # a second press on a pair this session already labelled (a double click), not a new label
    record_label(store, presentation, choice, note=st.session_state.get(f"l.note.{presentation.item_id}") or None)
    if choice != "skip":
        done.add(presentation.item_id)
    st.session_state["l.last"] = f"{choice} saved for the previous pair"


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
        st.caption("Keys: 1 = left better · 2 = tie · 3 = right better · S = skip. "
                   "Sides are shuffled per annotator.")

with view:
    mine = store.labels.latest(set_id, kinds=("human",), annotator=me)
    done = sum(r["label"] != "skip" for r in mine)
    n_items = next(s["n_items"] for s in sets if s["anchor_set_id"] == set_id)
    st.progress(done / n_items if n_items else 0.0,
                text=f"{me}: {done} of {n_items} labelled · {sum(r['label'] == 'skip' for r in mine)} skipped")
    if "l.last" in st.session_state:
        st.caption(st.session_state.pop("l.last"))
    if item is None:
        st.success("Everything in this set is labelled. Thank you!")
        st.stop()
    st.caption("Prompt")
    st.text(item.prompt)  # model and user text: plain text and code blocks, never HTML or Markdown
    left, right = st.columns(2)
    for col, side, text in ((left, "Left", item.left), (right, "Right", item.right)):
        col.caption(side)
        col.code(text, language=code_language(text), wrap_lines=True)
