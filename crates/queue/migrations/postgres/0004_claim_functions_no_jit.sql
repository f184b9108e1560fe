-- The claim functions turn planner methods off (enable_sort, enable_seqscan, …) to pin their
-- plans; a disabled method adds 10^10 to a plan's cost, which is far over jit_above_cost, so
-- PostgreSQL JIT-compiled every call: about 0.5 s of a capped claim's 0.6 s (auto_explain:
-- "JIT: Functions: 77 … Total 565 ms"), and a queue with per-group caps ran about a dozen
-- jobs a second. These statements are small; JIT never pays for itself here.
ALTER FUNCTION ferry_claim(text, bigint, bigint, text, bigint) SET jit = off;
ALTER FUNCTION ferry_claim_capped(text, bigint, bigint, text, bigint, bigint) SET jit = off;
ALTER FUNCTION ferry_complete(uuid[], text, bigint, boolean) SET jit = off;
ALTER FUNCTION ferry_heartbeat(uuid[], text, bigint) SET jit = off;
