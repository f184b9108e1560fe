// The pickup-latency figure, shared by the peers' scripts and measured as `ferry bench queue`
// measures it: 500 jobs, one every 10 ms, enqueued by another process while a worker waits;
// each job carries the wall-clock moment before its enqueue, and the handler takes the
// difference. Both processes read one clock (performance.timeOrigin + performance.now()).
//
// A peer script calls `pickupFromAnotherProcess(url)` while its worker runs; that starts the
// same script again with `--pickup-enqueuer URL`, where the script calls `enqueuePaced(add)`
// with its library's enqueue and prints the result.
import { spawn } from "node:child_process";

export const PICKUP_JOBS = 500;

export const wallMs = () => performance.timeOrigin + performance.now();

export const percentile = (sorted, p) => sorted[Math.max(0, Math.ceil(sorted.length * p) - 1)];

export const r2 = (x) => Math.round(x * 100) / 100;

/**
 * The enqueuer's side: `add(payload)` PICKUP_JOBS times at a steady pace; its timings and the
 * moment each enqueue returned (`done`, by job number).
 */
export async function enqueuePaced(add) {
  const took = [];
  const done = [];
  for (let i = 0; i < PICKUP_JOBS; i++) {
    const next = performance.now() + 10;
    const t = performance.now();
    await add({ i, t: wallMs() });
    done.push(wallMs());
    took.push(performance.now() - t);
    const wait = next - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  took.sort((a, b) => a - b);
  return { done, enqueue_p50_ms: r2(percentile(took, 0.5)), enqueue_p99_ms: r2(percentile(took, 0.99)) };
}

/**
 * The figures from the handler's records (`[job number, sent, started]`, wall-clock ms) and
 * the enqueuer's result: pickup from before the enqueue, and from its acknowledged commit (the
 * part the queue controls; 0 when the job started before the acknowledgement arrived).
 */
export function pickupFigures(starts, enqueue) {
  const lat = starts.map(([, sent, start]) => start - sent).sort((a, b) => a - b);
  const after = starts
    .map(([i, , start]) => Math.max(0, start - enqueue.done[i]))
    .sort((a, b) => a - b);
  return {
    pickup_p50_ms: r2(percentile(lat, 0.5)),
    pickup_p99_ms: r2(percentile(lat, 0.99)),
    pickup_enqueue_p99_ms: enqueue.enqueue_p99_ms,
    pickup_after_commit_p99_ms: r2(percentile(after, 0.99)),
  };
}

/** The worker's side: runs this script as the enqueuer on `url` and returns its timings. */
export function pickupFromAnotherProcess(url) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [process.argv[1], "--pickup-enqueuer", url], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`the pickup enqueuer exited with ${code}`));
      resolve(JSON.parse(out.trim().split("\n").pop()));
    });
  });
}
