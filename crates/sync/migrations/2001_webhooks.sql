-- ferry-server's tables. Versions from 2001 so they never collide with other crates'.

-- A store that sends webhooks: its platform and its active webhook secrets (sealed: see
-- crypto.rs), several during a rotation.
CREATE TABLE ferry_stores (
    name       TEXT PRIMARY KEY,
    platform   TEXT NOT NULL,
    secrets    TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- Every webhook delivery accepted, once: the primary key is the dedupe, inserted in the same
-- transaction as the job it enqueues.
CREATE TABLE ferry_deliveries (
    store       TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    platform    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (store, delivery_id)
);
CREATE INDEX ferry_deliveries_by_time ON ferry_deliveries (store, received_ms);
