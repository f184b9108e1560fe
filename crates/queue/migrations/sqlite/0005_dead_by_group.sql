-- Dead jobs by group (store), counted from the index alone: the dashboard's tiles read it on
-- every load. Partial, so it costs nothing until a job dies.
CREATE INDEX ferry_jobs_dead_group ON ferry_jobs (group_key) WHERE state = 'dead';
