"""A builder shared by the anchor tests: an anchor set whose labels are known."""

from rlaif.anchors.sets import AnchorDraft, DraftLabel, create_anchor_set


def labelled_set(store, n=50, *, truth=None, kind="human", annotators=("ana",), slices=("count", "ranking"),
                 name="anchors", holdout_fraction=0.2):
    """An anchor set of ``n`` items whose labels (by each annotator) are ``truth[i]`` (default A/B/tie cycle)."""
    truth = truth or [("A", "B", "A", "B", "tie")[i % 5] for i in range(n)]
    drafts = [AnchorDraft(prompt=f"question {i}", response_a=f"answer a{i}", response_b=f"answer b{i}",
                          slice=slices[i % len(slices)], reference=f"ref {i}",
                          labels=tuple(DraftLabel(a, truth[i], kind) for a in annotators))
              for i in range(n)]
    created = create_anchor_set(store, name, drafts, holdout_fraction=holdout_fraction)
    return created.anchor_set_id, truth
