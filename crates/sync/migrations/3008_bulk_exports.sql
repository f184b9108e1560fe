-- Bulk exports: how a run read the catalogs ("paged", "bulk", and why an export was paged
-- instead) and the phase it is in (an export's status and object count), for the API and
-- the terminal.
ALTER TABLE ferry_sync_runs ADD COLUMN mode TEXT NOT NULL DEFAULT 'paged';
ALTER TABLE ferry_sync_runs ADD COLUMN phase TEXT NOT NULL DEFAULT '';

-- A child's exported catalog, held while a full pass compares the parent's with it page by
-- page (an export is one stream in the child's own order). Deleted when the run ends.
CREATE TABLE ferry_bulk_copies (
    run     TEXT NOT NULL,
    product TEXT NOT NULL,
    body    TEXT NOT NULL,
    PRIMARY KEY (run, product)
);
