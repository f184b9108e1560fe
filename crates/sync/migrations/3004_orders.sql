-- Orders taken through the orders API. (client, idem_key) is the idempotency record: the
-- first request with a key inserts it, every later one finds it (across servers too). The
-- stored response is what a replay answers; none stored yet means the first is in flight.
CREATE TABLE ferry_orders (
    id              TEXT PRIMARY KEY,
    client          TEXT NOT NULL,
    idem_key        TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    -- pending, confirmed, failed
    status          TEXT NOT NULL,
    -- new, reserved, charged, done: how far the saga got (a recovery goes on from here)
    step            TEXT NOT NULL,
    items           TEXT NOT NULL,
    amount_cents    BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    payment_method  TEXT NOT NULL,
    transaction_id  TEXT,
    error_code      TEXT,
    response_status INTEGER,
    response_body   TEXT,
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    UNIQUE (client, idem_key)
);
CREATE INDEX ferry_orders_by_created ON ferry_orders (created_ms, id);

-- Stock an order holds in the parent until it is confirmed (then it is a sale) or released.
-- ferry_levels.reserved is the sum per item; this is what each order holds.
CREATE TABLE ferry_reservations (
    order_id  TEXT NOT NULL,
    item      TEXT NOT NULL,
    variant   TEXT NOT NULL,
    quantity  BIGINT NOT NULL,
    PRIMARY KEY (order_id, item)
);
ALTER TABLE ferry_levels ADD COLUMN reserved BIGINT NOT NULL DEFAULT 0;

-- Requests per API client, route and minute, shared by every server on the database.
CREATE TABLE ferry_rate_windows (
    client    TEXT NOT NULL,
    route     TEXT NOT NULL,
    window_ms BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (client, route, window_ms)
);
