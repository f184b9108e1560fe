-- Dashboard sessions: a browser signs in with a token once and then carries a session cookie.
-- Only a SHA-256 of the cookie is kept (a copy of this table opens no session); the CSRF token
-- is compared with every form a session posts. A token's sessions end when it is revoked.
CREATE TABLE ferry_ui_sessions (
    id_sha256  TEXT PRIMARY KEY,
    token_name TEXT NOT NULL,
    role       TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX ferry_ui_sessions_by_token ON ferry_ui_sessions (token_name);
