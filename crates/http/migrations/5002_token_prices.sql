-- Whether an orders token may give a line's unit price instead of the parent's (a wholesale
-- portal with negotiated prices); off unless asked for.
ALTER TABLE ferry_api_tokens ADD COLUMN set_prices BOOLEAN NOT NULL DEFAULT FALSE;
