-- Tokens ferry obtains itself (Shopify's client credentials grant and expiring offline tokens):
-- the refresh token a rotation replaced (tried once if its successor is refused), the lifetime
-- the renewal margin is a share of, the scopes granted, and whether the store must be
-- installed again, and why. A grant without refresh tokens keeps '' in refresh_token.
ALTER TABLE ferry_credentials ADD COLUMN previous_refresh_token TEXT;
ALTER TABLE ferry_credentials ADD COLUMN lifetime_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ferry_credentials ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE ferry_credentials ADD COLUMN state TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE ferry_credentials ADD COLUMN reason TEXT;
