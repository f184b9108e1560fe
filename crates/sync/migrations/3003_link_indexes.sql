-- A product's variant links (read by every push and reconciliation) and a parent variant's
-- copies (read by every sale) without scanning a child's links: both were full scans of
-- ferry_variant_links, quadratic over a catalog.
CREATE INDEX ferry_variant_links_by_product ON ferry_variant_links (child, parent_product);
CREATE INDEX ferry_variant_links_by_parent_variant ON ferry_variant_links (parent_variant);
