-- ferry-sync's tables. Versions from 3001 so they never collide with other crates'.

-- The stores of the network: one parent, any number of children. The access token is sealed
-- (see ferry-server's crypto); rules are JSON (fields the child takes from the parent, price).
CREATE TABLE ferry_network (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('parent', 'child')),
    graphql_url TEXT NOT NULL,
    token       TEXT NOT NULL,
    location_id TEXT NOT NULL DEFAULT '',
    rules       TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL DEFAULT 'new',
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL
);
-- At most one parent.
CREATE UNIQUE INDEX ferry_network_one_parent ON ferry_network (role) WHERE role = 'parent';

-- A parent product and its copy in a child. `state` is 'creating' while a create is in flight
-- (recorded before the remote write, so a retry looks for the earlier copy instead of making
-- a second), 'linked', or 'archived' after the parent deleted it.
CREATE TABLE ferry_links (
    child          TEXT NOT NULL,
    parent_product TEXT NOT NULL,
    child_product  TEXT,
    state          TEXT NOT NULL,
    parent_updated BIGINT NOT NULL DEFAULT 0,
    updated_ms     BIGINT NOT NULL,
    PRIMARY KEY (child, parent_product)
);
CREATE INDEX ferry_links_by_child_product ON ferry_links (child, child_product);

-- A parent variant and its copy in a child, with both inventory items.
CREATE TABLE ferry_variant_links (
    child          TEXT NOT NULL,
    parent_variant TEXT NOT NULL,
    parent_item    TEXT NOT NULL,
    child_variant  TEXT NOT NULL,
    child_item     TEXT NOT NULL,
    sku            TEXT,
    parent_product TEXT NOT NULL,
    PRIMARY KEY (child, parent_variant)
);
CREATE INDEX ferry_variant_links_by_child_item ON ferry_variant_links (child, child_item);
CREATE INDEX ferry_variant_links_by_child_variant ON ferry_variant_links (child, child_variant);
CREATE INDEX ferry_variant_links_by_parent_item ON ferry_variant_links (parent_item);

-- What ferry believes each store's `available` is, per inventory item (at the store's
-- location), and when the last absolute value that won was taken (last write wins).
CREATE TABLE ferry_levels (
    store       TEXT NOT NULL,
    item        TEXT NOT NULL,
    expected    BIGINT NOT NULL,
    last_set_ms BIGINT NOT NULL DEFAULT 0,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (store, item)
);

-- Writes ferry is about to make or has made to a store's stock: the intent ledger. A level
-- webhook that one of them explains is an echo, not a change.
CREATE TABLE ferry_intents (
    key        TEXT NOT NULL,
    store      TEXT NOT NULL,
    item       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    amount     BIGINT NOT NULL,
    state      TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (key, store, item)
);
CREATE INDEX ferry_intents_pending ON ferry_intents (store, item, state);

-- Each order counted once, whichever path saw it first (its webhook, a level check, a
-- reconciliation), and each store's highest order number read.
CREATE TABLE ferry_sales (
    store      TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (store, order_id)
);
CREATE TABLE ferry_order_marks (
    store  TEXT PRIMARY KEY,
    number BIGINT NOT NULL
);

-- Every write ferry makes to a store: what, the values before and after, and why.
CREATE TABLE ferry_audit (
    id         TEXT PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    store      TEXT NOT NULL,
    entity     TEXT NOT NULL,
    action     TEXT NOT NULL,
    fields     TEXT NOT NULL,
    cause      TEXT NOT NULL
);
CREATE INDEX ferry_audit_by_store ON ferry_audit (store, id);

-- Reconciliation runs: what each found and repaired.
CREATE TABLE ferry_sync_runs (
    id          TEXT PRIMARY KEY,
    child       TEXT NOT NULL,
    full_pass   BIGINT NOT NULL,
    state       TEXT NOT NULL,
    started_ms  BIGINT NOT NULL,
    finished_ms BIGINT,
    checked     BIGINT NOT NULL DEFAULT 0,
    created     BIGINT NOT NULL DEFAULT 0,
    updated     BIGINT NOT NULL DEFAULT 0,
    stock_fixed BIGINT NOT NULL DEFAULT 0,
    cursor_ms   BIGINT NOT NULL DEFAULT 0,
    error       TEXT
);

-- The SKUs of a store's catalog, indexed while a child is connected (the catalog is streamed
-- page by page into here, never held in memory).
CREATE TABLE ferry_skus (
    store     TEXT NOT NULL,
    sku       TEXT NOT NULL,
    variant   TEXT NOT NULL,
    item      TEXT NOT NULL,
    product   TEXT NOT NULL,
    available BIGINT,
    PRIMARY KEY (store, sku, variant)
);

-- Parent products that could not be linked to a child's existing products: a blank SKU, a
-- SKU on several variants, variants split over several products. Refused, never guessed.
CREATE TABLE ferry_link_problems (
    child          TEXT NOT NULL,
    parent_product TEXT NOT NULL,
    sku            TEXT NOT NULL,
    reason         TEXT NOT NULL,
    at_ms          BIGINT NOT NULL,
    PRIMARY KEY (child, parent_product, sku)
);
