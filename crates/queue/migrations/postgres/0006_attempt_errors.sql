-- Every failed attempt of a job, a JSON line each ({"attempt", "at", "error"}), appended by
-- the statement that records the failure: a job's history without a second table or a second
-- write on the success path.
ALTER TABLE ferry_jobs ADD COLUMN errors text;
