-- The job table. Times are epoch milliseconds bound from the application clock, never now().
CREATE TABLE ferry_jobs (
    id               text PRIMARY KEY,             -- UUIDv7 text
    queue            text     NOT NULL,
    kind             text     NOT NULL,
    payload          text    NOT NULL,
    -- queued | retrying (waiting) | running | completed | dead | cancelled | expired
    state            text     NOT NULL,
    priority         integer NOT NULL DEFAULT 0,  -- higher runs first
    -- Fairness round: a job's position in its group's line, floored at the queue's current
    -- round when it is enqueued, so claims ordered by it rotate between groups.
    vt               bigint   NOT NULL,
    run_at           bigint   NOT NULL,
    attempt          integer  NOT NULL DEFAULT 0,  -- counted at claim
    max_attempts     integer  NOT NULL,
    singleton_key    text,
    group_key        text     NOT NULL DEFAULT '',
    expires_at       bigint,
    lease_owner      text,
    lease_until      bigint,
    cancel_requested integer  NOT NULL DEFAULT 0,
    last_error       text,
    created_at       bigint   NOT NULL,
    started_at       bigint,
    finished_at      bigint
);

-- Every index but the primary key is partial, so finished rows cost nothing to keep until pruned.
CREATE INDEX ferry_jobs_claim ON ferry_jobs (queue, priority DESC, vt, id)
    WHERE state IN ('queued', 'retrying');
CREATE INDEX ferry_jobs_group ON ferry_jobs (queue, group_key, priority, vt)
    WHERE state IN ('queued', 'retrying');
CREATE UNIQUE INDEX ferry_jobs_singleton ON ferry_jobs (singleton_key)
    WHERE singleton_key IS NOT NULL AND state IN ('queued', 'retrying');
CREATE INDEX ferry_jobs_running ON ferry_jobs (queue, lease_until) WHERE state = 'running';
CREATE INDEX ferry_jobs_expiring ON ferry_jobs (expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('queued', 'retrying');
CREATE INDEX ferry_jobs_dead ON ferry_jobs (queue, finished_at) WHERE state = 'dead';

CREATE TABLE ferry_queues (
    name              text PRIMARY KEY,
    paused            integer NOT NULL DEFAULT 0,
    group_max_running integer               -- default cap for every group of the queue
);

CREATE TABLE ferry_group_limits (
    queue       text    NOT NULL,
    group_key   text    NOT NULL,
    max_running integer NOT NULL,
    PRIMARY KEY (queue, group_key)
);

CREATE TABLE ferry_cron (
    name     text PRIMARY KEY,
    expr     text   NOT NULL,
    queue    text   NOT NULL,
    kind     text   NOT NULL,
    payload  text  NOT NULL,
    next_at  bigint NOT NULL
);
