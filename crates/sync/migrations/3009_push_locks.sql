-- Who is pushing a parent product to a child right now. The queue lets a newer push of the
-- same product start while an older one still runs (a running job does not block a waiting
-- one), and two pushes writing the copy at once can leave the older snapshot last. A push
-- takes this row first, waits while another holds it, and lets it go when it ends; a holder
-- that died loses it when `until_ms` passes.
CREATE TABLE ferry_push_locks (
    child    TEXT   NOT NULL,
    product  TEXT   NOT NULL,
    holder   TEXT   NOT NULL,
    until_ms BIGINT NOT NULL,
    PRIMARY KEY (child, product)
);
