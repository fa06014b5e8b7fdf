/**
 * What the inference thread costs and buys, per call: the same ONNX session
 * run on the calling thread and on its own thread (INFERENCE_THREAD=caller
 * and worker), batch 1 and batch 64, one intra-op thread, rounds interleaved
 * so that a change in machine load hits both alike; and how often a 1 ms
 * timer fires on the event loop during ten batch-64 calls (a blocked loop
 * fires it once per call); and, to tell the channel from the machine, an
 * empty thread answering a message port and a SharedArrayBuffer
 * (Atomics.notify / Atomics.waitAsync) at once or after 0.4 ms of busy work.
 *
 *   npm run build && npm run bench:thread -- [--rounds 5] [--calls 1000]
 *
 * Writes bench/results/inference-thread.json and prints a table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { InferenceThread } from '../src/core/runtime-settings';
import { loadManifest } from '../src/models/manifest';
import { OnnxRuntimeFactory } from '../src/models/onnx-runtime';
import type { InferenceRuntime } from '../src/models/runtime';

const ROOT = path.resolve(__dirname, '..', '..');
const arg = (name: string, fallback: number) =>
  process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback;
const rounds = arg('--rounds', 5);
const calls = arg('--calls', 1000);
const THREADS: InferenceThread[] = ['caller', 'worker'];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function perCall(rt: InferenceRuntime, batch: number, n: number): Promise<number> {
  const input = new Float32Array(batch * 784).fill(0.1);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await rt.run(input, batch);
  return ((performance.now() - t0) / n) * 1000;
}

async function timerTicks(rt: InferenceRuntime): Promise<number> {
  const input = new Float32Array(64 * 784).fill(0.1);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  for (let i = 0; i < 10; i++) await rt.run(input, 64);
  clearInterval(timer);
  return ticks;
}

/** Atomics.waitAsync (Node 16+), which TypeScript's ES2022 library does not declare. */
interface AtomicsWaitAsync {
  waitAsync(array: Int32Array, index: number, value: number): { async: boolean; value: Promise<string> | string };
}

/** A thread that answers over its port, or over a SharedArrayBuffer flag, after `workMs` of busy work. */
const ECHO = `
const { parentPort, workerData } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const flag = new Int32Array(workerData.sab);
const work = () => { const t = performance.now(); while (performance.now() - t < workerData.workMs); };
if (workerData.atomics) {
  for (;;) {
    Atomics.wait(flag, 0, 0);
    if (Atomics.load(flag, 0) === 2) break;
    Atomics.store(flag, 0, 0);
    work();
    Atomics.store(flag, 1, 1);
    Atomics.notify(flag, 1);
  }
} else parentPort.on('message', (m) => { work(); parentPort.postMessage(m); });
`;

/** Microseconds per round trip to an echo thread, less its work. */
async function roundTrip(atomics: boolean, workMs: number, n: number): Promise<number> {
  const sab = new SharedArrayBuffer(8);
  const flag = new Int32Array(sab);
  const worker = new Worker(ECHO, { eval: true, workerData: { sab, atomics, workMs } });
  const once = atomics
    ? async () => {
        Atomics.store(flag, 1, 0);
        Atomics.store(flag, 0, 1);
        Atomics.notify(flag, 0);
        const r = (Atomics as unknown as AtomicsWaitAsync).waitAsync(flag, 1, 0);
        if (r.async) await r.value;
      }
    : () =>
        new Promise<void>((resolve) => {
          worker.once('message', () => resolve());
          worker.postMessage(1);
        });
  for (let i = 0; i < 100; i++) await once();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await once();
  const us = ((performance.now() - t0) / n) * 1000 - workMs * 1000;
  if (atomics) {
    Atomics.store(flag, 0, 2);
    Atomics.notify(flag, 0);
  }
  await worker.terminate();
  return us;
}

async function main(): Promise<void> {
  const results: Record<string, unknown>[] = [];
  for (const model of ['baseline', 'dendritic']) {
    const dir = path.join(ROOT, 'models', model, '1');
    const manifest = await loadManifest(dir);
    const rts = {} as Record<InferenceThread, InferenceRuntime>;
    for (const thread of THREADS) rts[thread] = await new OnnxRuntimeFactory({ intraOpThreads: 1, thread }).load(dir, manifest);
    for (const batch of [1, 64]) {
      const n = Math.max(20, Math.round(calls / batch));
      const us: Record<InferenceThread, number[]> = { caller: [], worker: [] };
      for (const thread of THREADS) await perCall(rts[thread], batch, Math.ceil(n / 5)); // warm-up
      for (let r = 0; r < rounds; r++) {
        for (const thread of r % 2 === 0 ? THREADS : [...THREADS].reverse()) us[thread].push(await perCall(rts[thread], batch, n));
      }
      const caller = median(us.caller);
      const worker = median(us.worker);
      results.push({ model, batch, callerUsPerCall: caller, workerUsPerCall: worker, threadCostUs: worker - caller });
    }
    for (const thread of THREADS) results.push({ model, thread, timerTicksDuringTenBatch64Calls: await timerTicks(rts[thread]) });
    for (const rt of Object.values(rts)) await rt.dispose();
  }
  const channels: Record<string, unknown>[] = [];
  for (const workMs of [0, 0.4]) {
    for (const atomics of [false, true]) {
      const us: number[] = [];
      for (let r = 0; r < rounds; r++) us.push(await roundTrip(atomics, workMs, 1000));
      channels.push({ channel: atomics ? 'SharedArrayBuffer + Atomics' : 'message port', workMs, overheadUs: median(us) });
    }
  }
  const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, load average ${os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}, Node ${process.version}`;
  const lines = [
    `Inference thread, ${new Date().toISOString()} on ${machine}; median of ${rounds} interleaved rounds.`,
    '',
    '| model | batch | calling thread, us/call | inference thread, us/call | thread cost, us/call |',
    '|---|---|---|---|---|',
    ...results
      .filter((r) => 'batch' in r)
      .map(
        (r) =>
          `| ${r.model} | ${r.batch} | ${(r.callerUsPerCall as number).toFixed(0)} | ${(r.workerUsPerCall as number).toFixed(0)} | ${(r.threadCostUs as number).toFixed(0)} |`,
      ),
    '',
    '| model | session on | 1 ms timer ticks during ten batch-64 calls |',
    '|---|---|---|',
    ...results.filter((r) => 'thread' in r).map((r) => `| ${r.model} | ${r.thread} | ${r.timerTicksDuringTenBatch64Calls} |`),
    '',
    '| hand-off to an empty thread | its work | round trip less the work, us |',
    '|---|---|---|',
    ...channels.map((c) => `| ${c.channel} | ${c.workMs} ms | ${(c.overheadUs as number).toFixed(0)} |`),
    '',
  ];
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(
    path.join(ROOT, 'bench/results/inference-thread.json'),
    `${JSON.stringify({ machine, rounds, calls, results, channels }, null, 2)}\n`,
  );
  process.stdout.write(lines.join('\n'));
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
