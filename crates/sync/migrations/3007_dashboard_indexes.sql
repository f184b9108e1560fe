-- What the dashboard reads newest first: every store's deliveries together (the per-store
-- index serves one store's), and the writes one event caused (a job's or an order's page).
CREATE INDEX ferry_deliveries_recent ON ferry_deliveries (received_ms, store, delivery_id);
CREATE INDEX ferry_audit_by_cause ON ferry_audit (cause, id);
