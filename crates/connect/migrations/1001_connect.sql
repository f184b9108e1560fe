-- ferry-connect's tables. Versions from 1001 so they never collide with the queue's.

-- A leaky bucket per rate-limited key (a store's API), shared by every worker of every process.
CREATE TABLE ferry_rate_budgets (
    key              TEXT PRIMARY KEY,
    level            DOUBLE PRECISION NOT NULL,
    at_ms            BIGINT NOT NULL,
    capacity         DOUBLE PRECISION NOT NULL,
    restore_per_s    DOUBLE PRECISION NOT NULL,
    blocked_until_ms BIGINT NOT NULL DEFAULT 0
);

-- A circuit breaker per key: closed, open until a time, or half-open while one probe runs.
CREATE TABLE ferry_breakers (
    key           TEXT PRIMARY KEY,
    state         TEXT NOT NULL DEFAULT 'closed',
    failures      INTEGER NOT NULL DEFAULT 0,
    open_until_ms BIGINT NOT NULL DEFAULT 0,
    opened_count  INTEGER NOT NULL DEFAULT 0,
    updated_ms    BIGINT NOT NULL
);

-- Where an incremental sync stands: the (updated_at, id) of the last record written.
CREATE TABLE ferry_sync_cursors (
    name       TEXT PRIMARY KEY,
    cursor_ms  BIGINT NOT NULL,
    cursor_id  TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
