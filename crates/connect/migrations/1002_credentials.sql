-- OAuth2 credentials per key (one per store connection): the current access token and its
-- expiry, and the refresh token, which rotates on every refresh and is stored with the new
-- access token in one statement.
CREATE TABLE ferry_credentials (
    key           TEXT PRIMARY KEY,
    access_token  TEXT,
    expires_at_ms BIGINT NOT NULL DEFAULT 0,
    refresh_token TEXT NOT NULL,
    updated_ms    BIGINT NOT NULL
);
