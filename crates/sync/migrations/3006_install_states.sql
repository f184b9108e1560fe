-- The install flow's single-use `state` values: made when a merchant is sent to the store's
-- consent page, taken (deleted) by the callback, refused after 10 minutes.
CREATE TABLE ferry_install_states (
    state      TEXT PRIMARY KEY,
    store      TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX ferry_install_states_store ON ferry_install_states (store);
