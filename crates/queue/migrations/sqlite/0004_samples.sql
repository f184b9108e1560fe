-- A minute of each queue as the workers saw it: jobs completed and failed in it (each worker
-- adds what it ran), and the depth one worker read. group_key '' is the whole queue; a row per
-- group (a store) carries that group's outcomes only. Kept for the retention the workers
-- prune by (7 days by default); what the dashboard's charts and a store's error rate read.
CREATE TABLE ferry_queue_samples (
    queue     text   NOT NULL,
    group_key text   NOT NULL,
    minute_ms bigint NOT NULL,
    completed bigint NOT NULL DEFAULT 0,
    failed    bigint NOT NULL DEFAULT 0,
    ready     bigint,
    running   bigint,
    dead      bigint,
    PRIMARY KEY (queue, group_key, minute_ms)
);
CREATE INDEX ferry_queue_samples_by_group ON ferry_queue_samples (group_key, minute_ms);
CREATE INDEX ferry_queue_samples_by_minute ON ferry_queue_samples (minute_ms);
