-- The fairness round column was named `vt`; it is `fair_round`: the round of its group's
-- rotation a waiting job is claimed in. Its indexes follow the rename.
ALTER TABLE ferry_jobs RENAME COLUMN vt TO fair_round;
