-- A parent collection's copy in a child, matched by handle (each store names its own ids).
CREATE TABLE ferry_collections (
    child      TEXT NOT NULL,
    handle     TEXT NOT NULL,
    collection TEXT NOT NULL,
    PRIMARY KEY (child, handle)
);
