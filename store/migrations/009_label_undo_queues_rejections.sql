-- 009_label_undo_queues_rejections: undo in labelling, per-annotator queues, per-pair rejection in approvals.
--
-- Decisions, so later migrations stay consistent:
--   * labels stay APPEND-ONLY: an undo appends a retraction of one label_id instead of deleting the label, so the
--     history shows what was pressed and taken back. Every label read leaves retracted labels out, so the label
--     before the retracted one (if any) counts again, as if the undone press never happened;
--   * assignments are a plan, not a label: (item, annotator) pairs written whole per set by a deterministic
--     round-robin over the annotators with an overlap target (each item to `overlap` annotators); re-assigning a
--     set replaces its rows. Labelling is never refused for an unassigned item, assigned ones only come first;
--   * an approval records the pairs a person unticked in the filtered set (rejected_pairs, a JSON list of pair ids):
--     they are left out of n_pairs, of the digest and of every file written from the approval.

CREATE TABLE anchor_label_retractions (
    label_id      VARCHAR PRIMARY KEY,
    item_id       VARCHAR NOT NULL,
    retracted_by  VARCHAR NOT NULL,
    retracted_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE anchor_assignments (
    anchor_set_id  VARCHAR NOT NULL,
    item_id        VARCHAR NOT NULL,
    annotator      VARCHAR NOT NULL,
    overlap        INTEGER NOT NULL CHECK (overlap >= 1),
    assigned_by    VARCHAR,
    assigned_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (item_id, annotator)
);
CREATE INDEX anchor_assignments_set_annotator ON anchor_assignments (anchor_set_id, annotator);

ALTER TABLE approvals ADD COLUMN rejected_pairs JSON;
