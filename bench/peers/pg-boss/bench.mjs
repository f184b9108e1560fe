// pg-boss measured the way `ferry bench queue` measures ferry: a fresh database, N jobs
// enqueued in batches of 1,000 (insert), then processed by no-op handlers from worker start to
// the last completion; pickup latency as ../pickup.mjs says. The last line is JSON with the
// same field names.
//
//   node bench.mjs postgres://postgres@127.0.0.1:5432/postgres [--jobs N] [--concurrency C] [--no-batch]
//
// Batched: each of `concurrency` local workers fetches and completes 50 jobs per round trip
// (batchSize); unbatched: one job per fetch and per completion. pg-boss polls (no LISTEN); its
// shortest interval, 0.5 s, is used.
import pg from "pg";
import { PgBoss } from "pg-boss";
import { enqueuePaced, pickupFigures, pickupFromAnotherProcess, PICKUP_JOBS, wallMs } from "../pickup.mjs";

const args = process.argv.slice(2);
if (args.includes("--pickup-enqueuer")) {
  // Sends only: no maintenance or scheduling in this process.
  const boss = new PgBoss({
    connectionString: args[args.indexOf("--pickup-enqueuer") + 1],
    max: 2,
    supervise: false,
    schedule: false,
  });
  boss.on("error", (e) => console.error(e.message));
  await boss.start();
  console.log(JSON.stringify(await enqueuePaced((p) => boss.send("pickup", p))));
  await boss.stop({ graceful: false });
  process.exit(0);
}
const admin = args.find((a) => a.startsWith("postgres")) ?? "postgres://postgres@127.0.0.1:5432/postgres";
const num = (flag, dflt) => (args.includes(flag) ? Number(args[args.indexOf(flag) + 1]) : dflt);
const jobs = num("--jobs", 50000);
const concurrency = num("--concurrency", 24);
const batched = !args.includes("--no-batch");
const batchSize = batched ? 50 : 1;

const name = `pgboss_bench_${process.pid}_${Date.now()}`;
const adminClient = new pg.Client({ connectionString: admin });
await adminClient.connect();
await adminClient.query(`CREATE DATABASE ${name}`);
const url = admin.replace(/\/[^/?]*(\?|$)/, `/${name}$1`);

// A pool as large as the workers, within what a default server accepts (100 connections).
const boss = new PgBoss({ connectionString: url, max: Math.min(concurrency + 4, 40) });
boss.on("error", (e) => console.error(e.message));
try {
  await boss.start();
  for (const q of ["noop_single", "noop", "pickup"]) await boss.createQueue(q);

  // 1. single enqueues, awaited
  const singles = Math.min(jobs, 5000);
  let t = performance.now();
  for (let i = 0; i < singles; i++) await boss.send("noop_single", { i });
  const enqueueSingle = singles / ((performance.now() - t) / 1000);

  // 2. batch enqueue
  t = performance.now();
  for (let done = 0; done < jobs; done += 1000) {
    const n = Math.min(1000, jobs - done);
    await boss.insert("noop", Array.from({ length: n }, (_, i) => ({ data: { i } })));
  }
  const enqueueBatch = jobs / ((performance.now() - t) / 1000);

  // 3. process
  let count = 0;
  let resolveAll;
  const allDone = new Promise((r) => (resolveAll = r));
  t = performance.now();
  await boss.work("noop", { batchSize, localConcurrency: concurrency, pollingIntervalSeconds: 0.5 }, async (batch) => {
    count += batch.length;
    if (count >= jobs) resolveAll();
  });
  await allDone;
  // Completions are written after the handler returns: wait until every job is completed in
  // the table (the queue's own counters are refreshed by maintenance, not at once).
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  for (;;) {
    const r = await db.query("SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'noop' AND state = 'completed'");
    if (r.rows[0].n >= jobs) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  await db.end();
  const process_per_s = jobs / ((performance.now() - t) / 1000);
  await boss.offWork("noop");

  // 4. pickup latency, the jobs sent by another process
  const lat = [];
  let resolvePick;
  const picked = new Promise((r) => (resolvePick = r));
  await boss.work("pickup", { batchSize, localConcurrency: concurrency, pollingIntervalSeconds: 0.5 }, async (batch) => {
    for (const j of batch) lat.push([j.data.i, j.data.t, wallMs()]);
    if (lat.length >= PICKUP_JOBS) resolvePick();
  });
  await new Promise((r) => setTimeout(r, 200));
  const enqueue = await pickupFromAnotherProcess(url);
  await picked;
  await boss.offWork("pickup");
  console.log(`pg-boss 12.38.0, jobs ${jobs}, concurrency ${concurrency}, batch ${batched}`);
  console.log(JSON.stringify({
    backend: "postgres (pg-boss 12.38.0)",
    jobs,
    concurrency,
    batch: batched,
    enqueue_single_per_s: Math.round(enqueueSingle),
    enqueue_batch_per_s: Math.round(enqueueBatch),
    process_per_s: Math.round(process_per_s),
    ...pickupFigures(lat, enqueue),
  }));
} finally {
  await boss.stop({ graceful: false, wait: true }).catch(() => {});
  await adminClient.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
  await adminClient.end();
}
