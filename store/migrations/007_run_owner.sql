-- The process a run lives in (``host:pid:start``, see store.process), so a reader can tell a running run from one
-- whose process died (kill -9, OOM, a pulled plug) and show it as interrupted instead of "running" forever.
ALTER TABLE runs ADD COLUMN owner VARCHAR;
