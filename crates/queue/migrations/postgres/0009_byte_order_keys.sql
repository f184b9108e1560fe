-- The job table's key columns compare by bytes (collation "C"). With the database's own
-- collation (C.UTF-8, en_US.UTF-8, ...) every B-tree step of an insert, claim or lookup on the
-- claim and group indexes called strcoll(); byte order makes the same steps a memcmp. Queue
-- names, group keys and singleton keys are identifiers, never sorted for people, so nothing
-- visible changes. Comparisons with other tables' text columns keep working: the database's
-- default collation yields to an explicit one.
ALTER TABLE ferry_jobs
    ALTER COLUMN queue TYPE text COLLATE "C",
    ALTER COLUMN group_key TYPE text COLLATE "C",
    ALTER COLUMN singleton_key TYPE text COLLATE "C";
