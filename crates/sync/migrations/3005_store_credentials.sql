-- How ferry gets a store's token. Since 2026 a merchant can no longer create the admin app that
-- showed a token to paste, so besides 'static' (such a token, in `token`) a store may use
-- 'client_credentials' (an app of the merchant's organization: ferry asks for a token a day) or
-- 'authorization_code' (installed through /oauth/shopify/install: an expiring offline token and
-- its rotating refresh token, kept in ferry_credentials). The app is one of ferry_apps by name,
-- or the store's own client id and (sealed) secret. Its client secret also signs the store's
-- webhooks.
CREATE TABLE ferry_apps (
    name          TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created_ms    BIGINT NOT NULL
);
ALTER TABLE ferry_network ADD COLUMN credentials TEXT NOT NULL DEFAULT 'static';
ALTER TABLE ferry_network ADD COLUMN shop_domain TEXT NOT NULL DEFAULT '';
ALTER TABLE ferry_network ADD COLUMN app TEXT NOT NULL DEFAULT '';
ALTER TABLE ferry_network ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
ALTER TABLE ferry_network ADD COLUMN client_secret TEXT NOT NULL DEFAULT '';
