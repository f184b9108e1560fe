// graphile-worker measured the way `ferry bench queue` measures ferry: a fresh database, N jobs
// enqueued in batches of 1,000 (addJobs), then processed by no-op tasks from worker start to
// the last completion; pickup latency as ../pickup.mjs says. The last line is JSON with the
// same field names.
//
//   node bench.mjs postgres://postgres@127.0.0.1:5432/postgres [--jobs N] [--concurrency C] [--no-batch]
import pg from "pg";
import { run, makeWorkerUtils, Logger } from "graphile-worker";
import { enqueuePaced, pickupFigures, pickupFromAnotherProcess, PICKUP_JOBS, wallMs } from "../pickup.mjs";

const args = process.argv.slice(2);
if (args.includes("--pickup-enqueuer")) {
  const utils = await makeWorkerUtils({
    connectionString: args[args.indexOf("--pickup-enqueuer") + 1],
    logger: makeLogger(),
  });
  console.log(JSON.stringify(await enqueuePaced((p) => utils.addJob("pickup", p))));
  await utils.release();
  process.exit(0);
}
const admin = args.find((a) => a.startsWith("postgres")) ?? "postgres://postgres@127.0.0.1:5432/postgres";
const jobs = Number(args[args.indexOf("--jobs") + 1] || 0) || 50000;
const batched = !args.includes("--no-batch");
const concurrency = Number(args[args.indexOf("--concurrency") + 1] || 0) || 24;

const name = `gw_bench_${process.pid}_${Date.now()}`;
const adminClient = new pg.Client({ connectionString: admin });
await adminClient.connect();
await adminClient.query(`CREATE DATABASE ${name}`);
const url = admin.replace(/\/[^/?]*(\?|$)/, `/${name}$1`);

// graphile's documented high-throughput settings (its performance page): a local queue and
// batched completions. Unbatched: its defaults.
const preset = batched
  ? { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } }
  : { worker: {} };

// A runner of `taskList` at the benchmark's concurrency.
const start = (taskList) =>
  run({
    connectionString: url,
    concurrency,
    noHandleSignals: true,
    pollInterval: 500,
    logger: makeLogger(),
    preset,
    taskList,
  });

try {
  const utils = await makeWorkerUtils({ connectionString: url, logger: makeLogger() });
  await utils.migrate();

  // 1. single enqueues, awaited
  const singles = Math.min(jobs, 5000);
  let t = performance.now();
  for (let i = 0; i < singles; i++) await utils.addJob("noop_single", { i });
  const enqueueSingle = singles / ((performance.now() - t) / 1000);
  await utils.withPgClient((c) => c.query("delete from graphile_worker._private_jobs"));

  // 2. batch enqueue
  t = performance.now();
  for (let done = 0; done < jobs; done += 1000) {
    const n = Math.min(1000, jobs - done);
    await utils.addJobs(Array.from({ length: n }, (_, i) => ({ identifier: "noop", payload: { i } })));
  }
  const enqueueBatch = jobs / ((performance.now() - t) / 1000);

  // 3. process
  let count = 0;
  let resolveAll;
  const allDone = new Promise((r) => (resolveAll = r));
  t = performance.now();
  const runner = await start({ noop: async () => { if (++count === jobs) resolveAll(); } });
  await allDone;
  await runner.stop();
  const process_per_s = jobs / ((performance.now() - t) / 1000);

  // 4. pickup latency, the jobs enqueued by another process
  const lat = [];
  let resolvePick;
  const picked = new Promise((r) => (resolvePick = r));
  const pickRunner = await start({
    pickup: async (p) => { lat.push([p.i, p.t, wallMs()]); if (lat.length === PICKUP_JOBS) resolvePick(); },
  });
  await new Promise((r) => setTimeout(r, 200));
  const enqueue = await pickupFromAnotherProcess(url);
  await picked;
  await pickRunner.stop();
  await utils.release();
  console.log(`graphile-worker 0.18.0, jobs ${jobs}, concurrency ${concurrency}, batch ${batched}`);
  console.log(JSON.stringify({
    backend: "postgres (graphile-worker 0.18.0)",
    jobs,
    concurrency,
    batch: batched,
    enqueue_single_per_s: Math.round(enqueueSingle),
    enqueue_batch_per_s: Math.round(enqueueBatch),
    process_per_s: Math.round(process_per_s),
    ...pickupFigures(lat, enqueue),
  }));
} finally {
  await adminClient.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await adminClient.end();
}

function makeLogger() {
  // Errors only: the figures are the output.
  return new Logger(() => (level, message) => {
    if (level === "error") console.error(message);
  });
}
