/**
 * The benchmark, one command: `npm run bench` (after `npm run build`).
 *
 * For each shipped model, in one run on this machine:
 *  1. the floor: raw onnxruntime-node session.run, batch 1 and batch 64;
 *  2. the service's DataPlane classify in process (routing and metrics on),
 *     1 and 64 concurrent callers;
 *  3. the built service over HTTP (/v1/classify pixel JSON and PNG multipart,
 *     /v1/classify/batch of 64) and gRPC (Classify, ClassifyStream) at 1, 8
 *     and 64 concurrent clients, and the p99 at half the best HTTP throughput;
 *     (HTTP with autocannon, and with wrk when installed: unpinned, and with
 *     the server and wrk pinned to separate CPUs), the same service with
 *     INFERENCE_THREAD=caller and with MODEL_PRECISION=int8;
 *  4. a minimal node:http + onnxruntime-node server on the same model;
 *  5. gunicorn + Flask + PyTorch on the same network, when installed;
 *  6. resident memory with both models loaded, time from start to ready, and
 *     time from SIGTERM to exit with 64 clients still sending;
 *  7. resident and peak memory under the hostile-input corpus (hostile-memory.ts).
 * Prints a table and the ratios to the floors; writes bench/results/.
 *
 *   npm run bench -- [--seconds 5] [--models baseline,dendritic]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/core/logger';
import { createService } from '../src/service';
import { readTestSet } from '../src/tools/fashion-mnist';
import { hostileMemory } from './hostile-memory';
import { grpcStreamLoad, grpcUnaryLoad, httpLoad, httpPacedLoad, type LoadResult, productClient, wrkAvailable, wrkLoad } from './load';

const ROOT = path.resolve(__dirname, '..', '..');
const CONCURRENCY = [1, 8, 64];
const BATCH = 64;
const WRK = '[wrk]';
const FLOOR = 'floor: node:http + onnxruntime, pixel JSON';
const PYTHON = 'gunicorn (2 workers) + Flask + PyTorch, pixel JSON';
const HALF = 'HTTP /v1/classify, pixel JSON, steady at half the best throughput';

/** Whether a model version ships an int8 copy (formats.onnx.int8). */
function hasInt8(dir: string): boolean {
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  return manifest.formats?.onnx?.int8 !== undefined;
}

interface Row {
  model: string;
  path: string;
  concurrency: number | string;
  /** Images per second. */
  imagesPerSecond: number;
  p50Ms?: number;
  p99Ms?: number;
  errors?: number;
}

function args(): { seconds: number; models: string[] } {
  const a = process.argv.slice(2);
  const get = (flag: string) => (a.includes(flag) ? a[a.indexOf(flag) + 1] : undefined);
  return { seconds: Number(get('--seconds') ?? 5), models: (get('--models') ?? 'baseline,dendritic').split(',') };
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor(url: string, child: ChildProcess, timeoutMs = 60_000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return performance.now() - t0;
    } catch {
      /* not yet */
    }
    if (child.exitCode !== null) throw new Error(`${url}: process exited ${child.exitCode}`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`${url}: not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** 1. onnxruntime-node alone, as the service configures it (ORT_THREADS intra-op threads, default 1). */
async function runtimeFloor(dir: string, pixels: Uint8Array, seconds: number, threads = 1): Promise<{ b1: number; b64: number }> {
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const { mean, std } = manifest.input.normalization;
  const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), { intraOpNumThreads: threads, interOpNumThreads: 1 });
  const name = session.inputNames[0];
  const tensor = (n: number) => {
    const x = new Float32Array(n * 784);
    for (let i = 0; i < x.length; i++) x[i] = (pixels[i % pixels.length] / 255 - mean) / std;
    return new ort.Tensor('float32', x, [n, 1, 28, 28]);
  };
  const perImage = async (n: number) => {
    const t = tensor(n);
    for (let i = 0; i < 20; i++) await session.run({ [name]: t });
    let runs = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < (seconds * 1000) / 2) {
      await session.run({ [name]: t });
      runs++;
    }
    return (performance.now() - t0) / 1000 / (runs * n);
  };
  const b1 = await perImage(1);
  const b64 = await perImage(BATCH);
  await session.release();
  return { b1, b64 };
}

function routingFor(dir: string, model: string): string {
  const file = path.join(dir, `routing-${model}.json`);
  writeFileSync(file, JSON.stringify({ experiment: `bench-${model}`, control: model, arms: [{ name: model, model, weight: 1 }] }));
  return file;
}

/** 2. DataPlane.classify in this process: seconds per image at 1 and 64 concurrent callers. */
async function inProcess(model: string, routingFile: string, images: Uint8Array, seconds: number): Promise<{ c1: number; c64: number }> {
  const config = loadConfig({
    MODEL_DIR: path.join(ROOT, 'models'),
    ROUTING_FILE: routingFile,
    HTTP_PORT: '0',
    GRPC_PORT: '0',
    METRICS_PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
  });
  const service = await createService(config, createLogger('silent'));
  await service.start();
  const count = images.length / 784;
  const perImage = async (callers: number) => {
    let done = 0;
    const end = performance.now() + (seconds * 1000) / 2;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: callers }, async (_, c) => {
        for (let i = c; performance.now() < end; i += callers) {
          const k = i % count;
          await service.dataplane.classify(
            { kind: 'pixels', pixels: images.subarray(k * 784, (k + 1) * 784) },
            { routingKey: `customer-${i % 1000}` },
          );
          done++;
        }
      }),
    );
    return (performance.now() - t0) / 1000 / done;
  };
  await perImage(1); // warm-up
  const c1 = await perImage(1);
  const c64 = await perImage(64);
  await service.stop();
  return { c1, c64 };
}

/** A child process; `cpus` pins it (and every thread it starts) to those CPUs with taskset. */
function startChild(cmd: string, argv: string[], env: Record<string, string>, cwd = ROOT, cpus?: string): ChildProcess {
  const [c, a] = cpus ? ['taskset', ['-c', cpus, cmd, ...argv]] : [cmd, argv];
  const child = spawn(c, a, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', () => undefined);
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(t);
}

function multipart(png: Buffer): { body: Buffer; contentType: string } {
  const boundary = 'benchboundary7d1f';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="item.png"\r\nContent-Type: image/png\r\n\r\n`),
    png,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

/**
 * The built service on free ports with `env` and a routing file (undefined:
 * the shipped one, both models), ready; `readyMs` from its start to ready.
 */
async function serve(
  routing: string | undefined,
  env: Record<string, string> = {},
  cpus?: string,
): Promise<{ base: string; grpcPort: number; child: ChildProcess; readyMs: number }> {
  const [httpPort, grpcPort] = [await freePort(), await freePort()];
  const t0 = performance.now();
  const child = startChild(
    process.execPath,
    ['dist/src/main.js'],
    {
      HTTP_PORT: String(httpPort),
      GRPC_PORT: String(grpcPort),
      METRICS_PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ...(routing ? { ROUTING_FILE: routing } : {}),
      ...env,
    },
    ROOT,
    cpus,
  );
  const base = `http://127.0.0.1:${httpPort}`;
  await waitFor(`${base}/readyz`, child);
  return { base, grpcPort, child, readyMs: performance.now() - t0 };
}

/**
 * Where the server and wrk run when pinned: the server on the first half of
 * the CPUs, wrk on the rest (undefined on a one-CPU machine).
 */
function pinning(): { server: string; load: string } | undefined {
  const n = os.cpus().length;
  if (n < 2) return undefined;
  const half = Math.floor(n / 2);
  const range = (a: number, b: number) => (a === b ? String(a) : `${a}-${b}`);
  return { server: range(0, half - 1), load: range(half, n - 1) };
}

const row = (model: string, p: string, concurrency: number | string, r: LoadResult, imagesPerRequest = 1): Row => ({
  model,
  path: p,
  concurrency,
  imagesPerSecond: r.requestsPerSecond * imagesPerRequest,
  p50Ms: r.p50Ms,
  p99Ms: r.p99Ms,
  errors: r.errors,
});

async function main(): Promise<void> {
  const { seconds, models } = args();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'pc-bench-'));
  const { images } = readTestSet();
  const sample = images.pixels.subarray(0, 1000 * 784);
  const pixels = Array.from(images.pixels.subarray(0, 784));
  const json = JSON.stringify({ pixels });
  const batchJson = JSON.stringify({
    images: Array.from({ length: BATCH }, (_, i) => ({ pixels: Array.from(images.pixels.subarray(i * 784, (i + 1) * 784)) })),
  });
  const batchRaw = Buffer.from(images.pixels.subarray(0, BATCH * 784));
  const useWrk = wrkAvailable();
  const pins = pinning();
  const png = await sharp(Buffer.from(images.pixels.subarray(0, 784)), { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toBuffer();
  const form = multipart(png);
  const rows: Row[] = [];
  const floors: Record<string, { b1: number; b64: number; inproc1: number; inproc64: number }> = {};
  const log = (s: string) => process.stderr.write(`${s}\n`);
  // Debian's Python (python3-torch, python3-flask, gunicorn), not whatever python3 is first on PATH.
  const pythonAvailable =
    spawnSync('/usr/bin/python3', ['-c', 'import flask, torch, gunicorn']).status === 0 &&
    spawnSync('/usr/bin/gunicorn', ['--version']).status === 0;

  for (const model of models) {
    const dir = path.join(ROOT, 'models', model, '1');
    log(`== ${model}: runtime floor`);
    const f = await runtimeFloor(dir, sample, seconds);
    rows.push({ model, path: 'onnxruntime session.run, batch 1', concurrency: 1, imagesPerSecond: 1 / f.b1 });
    rows.push({ model, path: `onnxruntime session.run, batch ${BATCH}`, concurrency: 1, imagesPerSecond: 1 / f.b64 });
    const f2 = await runtimeFloor(dir, sample, seconds, 2);
    rows.push({ model, path: `onnxruntime session.run, batch ${BATCH}, 2 threads`, concurrency: 1, imagesPerSecond: 1 / f2.b64 });
    const routing = routingFor(tmp, model);
    log(`== ${model}: DataPlane in process`);
    const ip = await inProcess(model, routing, sample, seconds);
    rows.push({ model, path: 'DataPlane.classify in process', concurrency: 1, imagesPerSecond: 1 / ip.c1 });
    rows.push({ model, path: 'DataPlane.classify in process', concurrency: 64, imagesPerSecond: 1 / ip.c64 });
    floors[model] = { b1: f.b1, b64: f.b64, inproc1: ip.c1, inproc64: ip.c64 };

    log(`== ${model}: the service over HTTP and gRPC`);
    const svc = await serve(routing);
    const { base } = svc;
    let bestJson = 0;
    for (const c of CONCURRENCY) {
      const r = await httpLoad({ url: `${base}/v1/classify`, body: json, contentType: 'application/json', connections: c, seconds });
      bestJson = Math.max(bestJson, r.requestsPerSecond);
      rows.push(row(model, 'HTTP /v1/classify, pixel JSON', c, r));
    }
    if (useWrk) {
      const r = await wrkLoad({ url: `${base}/v1/classify`, body: json, contentType: 'application/json', connections: 64, seconds });
      bestJson = Math.max(bestJson, r.requestsPerSecond);
      rows.push(row(model, `HTTP /v1/classify, pixel JSON ${WRK}`, 64, r));
    }
    for (const c of CONCURRENCY)
      rows.push(
        row(
          model,
          'HTTP /v1/classify, PNG multipart',
          c,
          await httpLoad({ url: `${base}/v1/classify`, body: form.body, contentType: form.contentType, connections: c, seconds }),
        ),
      );
    for (const c of CONCURRENCY)
      rows.push(
        row(
          model,
          `HTTP /v1/classify/batch, ${BATCH} pixel images`,
          c,
          await httpLoad({ url: `${base}/v1/classify/batch`, body: batchJson, contentType: 'application/json', connections: c, seconds }),
          BATCH,
        ),
      );
    for (const c of [1, 8])
      rows.push(
        row(
          model,
          `HTTP /v1/classify/batch, ${BATCH} raw uint8 images`,
          c,
          await httpLoad({
            url: `${base}/v1/classify/batch`,
            body: batchRaw,
            contentType: 'application/octet-stream',
            connections: c,
            seconds,
          }),
          BATCH,
        ),
      );
    const steady = (url: string, rate: number, s: number) =>
      httpPacedLoad({ url, body: json, contentType: 'application/json', connections: 64, seconds: s, rate });
    const halfRate = Math.round(bestJson / 2);
    await steady(`${base}/v1/classify`, halfRate, 2); // warm-up: connections, JIT
    rows.push(row(model, HALF, 64, await steady(`${base}/v1/classify`, halfRate, seconds)));
    const client = productClient(`127.0.0.1:${svc.grpcPort}`);
    const request = { image: { pixels: { values: pixels } }, routing_key: 'bench-customer' };
    await grpcUnaryLoad(client, request, 1, 0.2); // connect and warm up
    for (const c of CONCURRENCY) rows.push(row(model, 'gRPC Classify', c, await grpcUnaryLoad(client, request, c, seconds)));
    rows.push(row(model, 'gRPC ClassifyStream', 'stream', await grpcStreamLoad(client, request, 20_000)));
    client.close();
    await stopChild(svc.child);

    // The same service with the session on the event loop's thread (INFERENCE_THREAD=caller), at the same steady rate.
    log(`== ${model}: INFERENCE_THREAD=caller`);
    const onLoop = await serve(routing, { INFERENCE_THREAD: 'caller' });
    rows.push(
      row(
        model,
        'HTTP /v1/classify, pixel JSON, INFERENCE_THREAD=caller',
        64,
        await httpLoad({ url: `${onLoop.base}/v1/classify`, body: json, contentType: 'application/json', connections: 64, seconds }),
      ),
    );
    await steady(`${onLoop.base}/v1/classify`, halfRate, 2);
    rows.push(row(model, `${HALF}, INFERENCE_THREAD=caller`, 64, await steady(`${onLoop.base}/v1/classify`, halfRate, seconds)));
    await stopChild(onLoop.child);

    // The bulk paths with both cores given to onnxruntime (ORT_THREADS=2).
    const svc2 = await serve(routing, { ORT_THREADS: '2' });
    for (const c of [1, 8])
      rows.push(
        row(
          model,
          `HTTP /v1/classify/batch, ${BATCH} raw uint8 images, ORT_THREADS=2`,
          c,
          await httpLoad({
            url: `${svc2.base}/v1/classify/batch`,
            body: batchRaw,
            contentType: 'application/octet-stream',
            connections: c,
            seconds,
          }),
          BATCH,
        ),
      );
    const client2 = productClient(`127.0.0.1:${svc2.grpcPort}`);
    await grpcUnaryLoad(client2, request, 1, 0.2);
    rows.push(row(model, 'gRPC ClassifyStream, ORT_THREADS=2', 'stream', await grpcStreamLoad(client2, request, 20_000)));
    client2.close();
    await stopChild(svc2.child);

    if (hasInt8(dir)) {
      log(`== ${model}: MODEL_PRECISION=int8`);
      const q = await serve(routing, { MODEL_PRECISION: 'int8' });
      if (useWrk)
        rows.push(
          row(
            model,
            `HTTP /v1/classify, pixel JSON, int8 ${WRK}`,
            64,
            await wrkLoad({ url: `${q.base}/v1/classify`, body: json, contentType: 'application/json', connections: 64, seconds }),
          ),
        );
      for (const c of [1, 8])
        rows.push(
          row(
            model,
            `HTTP /v1/classify/batch, ${BATCH} raw uint8 images, int8`,
            c,
            await httpLoad({
              url: `${q.base}/v1/classify/batch`,
              body: batchRaw,
              contentType: 'application/octet-stream',
              connections: c,
              seconds,
            }),
            BATCH,
          ),
        );
      await steady(`${q.base}/v1/classify`, halfRate, 2);
      rows.push(row(model, `${HALF}, int8`, 64, await steady(`${q.base}/v1/classify`, halfRate, seconds)));
      const qc = productClient(`127.0.0.1:${q.grpcPort}`);
      await grpcUnaryLoad(qc, request, 1, 0.2);
      rows.push(row(model, 'gRPC ClassifyStream, int8', 'stream', await grpcStreamLoad(qc, request, 20_000)));
      qc.close();
      await stopChild(q.child);
    }

    log(`== ${model}: node:http + onnxruntime floor server`);
    const startFloor = async (cpus?: string) => {
      const port = await freePort();
      const child = startChild(process.execPath, ['dist/bench/floor-server.js', dir, String(port)], {}, ROOT, cpus);
      await waitFor(`http://127.0.0.1:${port}/`, child);
      return { url: `http://127.0.0.1:${port}/v1/classify`, child };
    };
    const floor = await startFloor();
    for (const c of CONCURRENCY)
      rows.push(
        row(
          model,
          FLOOR,
          c,
          await httpLoad({
            url: floor.url,
            body: json,
            contentType: 'application/json',
            connections: c,
            seconds,
          }),
        ),
      );
    if (useWrk)
      rows.push(
        row(
          model,
          `${FLOOR} ${WRK}`,
          64,
          await wrkLoad({ url: floor.url, body: json, contentType: 'application/json', connections: 64, seconds }),
        ),
      );
    await stopChild(floor.child);

    // Server and wrk pinned to separate CPUs: the service and the floor each get the same share.
    if (useWrk && pins) {
      log(`== ${model}: pinned, server on CPU ${pins.server}, wrk on CPU ${pins.load}`);
      const pinnedRow = `[wrk, pinned: server CPU ${pins.server}, wrk CPU ${pins.load}]`;
      const ps = await serve(routing, {}, pins.server);
      rows.push(
        row(
          model,
          `HTTP /v1/classify, pixel JSON ${pinnedRow}`,
          64,
          await wrkLoad({
            url: `${ps.base}/v1/classify`,
            body: json,
            contentType: 'application/json',
            connections: 64,
            seconds,
            cpus: pins.load,
          }),
        ),
      );
      await stopChild(ps.child);
      const pf = await startFloor(pins.server);
      rows.push(
        row(
          model,
          `${FLOOR} ${pinnedRow}`,
          64,
          await wrkLoad({ url: pf.url, body: json, contentType: 'application/json', connections: 64, seconds, cpus: pins.load }),
        ),
      );
      await stopChild(pf.child);
    }

    if (pythonAvailable) {
      log(`== ${model}: gunicorn + Flask + PyTorch`);
      const pyPort = await freePort();
      const run = model === 'baseline' ? 'runs/baseline-seed1' : 'runs/dendritic-seed1';
      const py = startChild(
        '/usr/bin/gunicorn',
        [
          '-w',
          '2',
          '-b',
          `127.0.0.1:${pyPort}`,
          '--chdir',
          path.join(ROOT, 'bench/python'),
          `flask_server:create_app("${run}", "${path.join(dir, 'manifest.json')}")`,
        ],
        {},
        path.join(ROOT, 'training'),
      );
      await waitFor(`http://127.0.0.1:${pyPort}/healthz`, py, 120_000);
      for (const c of CONCURRENCY)
        rows.push(
          row(
            model,
            PYTHON,
            c,
            await httpLoad({
              url: `http://127.0.0.1:${pyPort}/v1/classify`,
              body: json,
              contentType: 'application/json',
              connections: c,
              seconds,
            }),
          ),
        );
      if (useWrk)
        rows.push(
          row(
            model,
            `${PYTHON} ${WRK}`,
            64,
            await wrkLoad({
              url: `http://127.0.0.1:${pyPort}/v1/classify`,
              body: json,
              contentType: 'application/json',
              connections: 64,
              seconds,
            }),
          ),
        );
      await stopChild(py);
    }
  }

  log('== both models: start-up time and memory');
  /** Start the service with both models (the shipped routing), time it to ready, and read its memory idle and after a load. */
  const startup = async (env: Record<string, string>) => {
    const { child, base, readyMs } = await serve(undefined, env);
    const rssIdle = rssMb(child.pid!);
    await httpLoad({ url: `${base}/v1/classify`, body: json, contentType: 'application/json', connections: 64, seconds });
    return { child, base, readyMs, rssIdle, rssLoaded: rssMb(child.pid!) };
  };
  const int8Everywhere = models.every((m) => hasInt8(path.join(ROOT, 'models', m, '1')));
  const quantized = int8Everywhere ? await startup({ MODEL_PRECISION: 'int8' }) : undefined;
  if (quantized) await stopChild(quantized.child);
  const { child: svc, base, readyMs, rssIdle, rssLoaded } = await startup({});
  // SIGTERM halfway through a load: how long the drain and exit take with requests in flight.
  const drainLoad = httpLoad({
    url: `${base}/v1/classify`,
    body: json,
    contentType: 'application/json',
    connections: 64,
    seconds,
  });
  await new Promise((r) => setTimeout(r, (seconds * 1000) / 2));
  const signalAt = performance.now();
  await stopChild(svc);
  const exitMs = performance.now() - signalAt;
  await drainLoad;

  log('== hostile input: memory');
  const hostile = await hostileMemory(3);

  const find = (model: string, p: string, c: number | string) =>
    rows.find((r) => r.model === model && r.path === p && r.concurrency === c)?.imagesPerSecond ?? NaN;
  const targets: { target: string; measured: string; met: boolean }[] = [];
  for (const model of models) {
    const fl = floors[model];
    const jsonC64 = find(model, 'HTTP /v1/classify, pixel JSON', 64);
    const floorC64 = find(model, FLOOR, 64);
    const wrkJson = find(model, `HTTP /v1/classify, pixel JSON ${WRK}`, 64);
    const wrkFloor = find(model, `${FLOOR} ${WRK}`, 64);
    const pinnedJson = rows.find((r) => r.model === model && r.path.startsWith('HTTP /v1/classify, pixel JSON [wrk, pinned'));
    const pinnedFloor = rows.find((r) => r.model === model && r.path.startsWith(`${FLOOR} [wrk, pinned`));
    const grpcC64 = find(model, 'gRPC Classify', 64);
    /** The best row among those whose path starts with `prefix`, and its path. */
    const best = (prefix: string) =>
      rows
        .filter((r) => r.model === model && r.path.startsWith(prefix))
        .reduce<Row | undefined>((a, r) => (!a || r.imagesPerSecond > a.imagesPerSecond ? r : a), undefined);
    const batch = best(`HTTP /v1/classify/batch, ${BATCH} raw uint8 images`);
    const stream = best('gRPC ClassifyStream');
    const rawBest = Math.max(
      1 / fl.b64,
      rows.find((r) => r.model === model && r.path.includes('batch 64, 2 threads'))?.imagesPerSecond ?? 0,
    );
    const py = useWrk ? find(model, `${PYTHON} ${WRK}`, 64) : find(model, PYTHON, 64);
    const ours = useWrk ? wrkJson : jsonC64;
    const halfRow = rows.find((r) => r.model === model && r.path === HALF)!;
    const halfCaller = rows.find((r) => r.model === model && r.path === `${HALF}, INFERENCE_THREAD=caller`);
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x (${a.toFixed(0)} vs ${b.toFixed(0)} req/s)`;
    targets.push(
      {
        target: `${model}: in-process c=1 <= 1.15x raw batch-1 cost`,
        measured: `${(fl.inproc1 / fl.b1).toFixed(2)}x (${(fl.inproc1 * 1e6).toFixed(0)} vs ${(fl.b1 * 1e6).toFixed(0)} us/image)`,
        met: fl.inproc1 / fl.b1 <= 1.15,
      },
      {
        target: `${model}: in-process c=64 below raw batch-1 cost`,
        measured: `${(fl.inproc64 / fl.b1).toFixed(2)}x (${(fl.inproc64 * 1e6).toFixed(0)} us/image)`,
        met: fl.inproc64 < fl.b1,
      },
      {
        target: `${model}: HTTP pixel JSON c=64 >= 0.9x node:http floor with wrk`,
        measured: useWrk
          ? `${ratio(wrkJson, wrkFloor)}; pinned: ${pinnedJson && pinnedFloor ? ratio(pinnedJson.imagesPerSecond, pinnedFloor.imagesPerSecond) : 'n/a'}; autocannon: ${ratio(jsonC64, floorC64)}`
          : `wrk not installed; autocannon: ${ratio(jsonC64, floorC64)}`,
        met: useWrk && wrkJson / wrkFloor >= 0.9,
      },
      {
        target: `${model}: gRPC unary c=64 >= HTTP pixel JSON c=64 (autocannon)`,
        measured: `${(grpcC64 / jsonC64).toFixed(2)}x (${grpcC64.toFixed(0)} req/s)`,
        met: grpcC64 >= jsonC64,
      },
      {
        target: `${model}: batch (binary) and stream >= 10,000 images/s`,
        measured:
          `batch ${batch?.imagesPerSecond.toFixed(0)} (${batch?.path.replace('HTTP /v1/classify/batch, ', '')}, c=${batch?.concurrency}), ` +
          `stream ${stream?.imagesPerSecond.toFixed(0)} (${stream?.path}); raw onnxruntime float32 at batch 64: ${rawBest.toFixed(0)}`,
        met: (batch?.imagesPerSecond ?? 0) >= 10_000 && (stream?.imagesPerSecond ?? 0) >= 10_000,
      },
      {
        target: `${model}: >= 5x the Python stack (c=64${useWrk ? ', wrk' : ''})`,
        measured: !Number.isFinite(py)
          ? 'Python stack not installed'
          : py > 0
            ? `${(ours / py).toFixed(1)}x (${ours.toFixed(0)} vs ${py.toFixed(0)} req/s)`
            : 'the Python stack answered nothing in time',
        met: py > 0 && ours / py >= 5,
      },
      {
        target: `${model}: p99 < 10 ms at half the best throughput`,
        measured:
          `${halfRow.p99Ms?.toFixed(1)} ms at ${halfRow.imagesPerSecond.toFixed(0)} req/s` +
          (halfCaller ? ` (INFERENCE_THREAD=caller: ${halfCaller.p99Ms?.toFixed(1)} ms)` : ''),
        met: (halfRow.p99Ms ?? Infinity) < 10,
      },
    );
  }
  targets.push({
    target: 'resident memory < 300 MB with both models',
    measured: `float32: ${rssIdle.toFixed(0)} MB idle, ${rssLoaded.toFixed(0)} MB after load${quantized ? `; int8: ${quantized.rssIdle.toFixed(0)} MB idle, ${quantized.rssLoaded.toFixed(0)} MB after load` : ''}`,
    met: Math.max(rssLoaded, quantized?.rssLoaded ?? 0) < 300,
  });
  targets.push({
    target: 'ready < 3 s',
    measured: `float32 ${(readyMs / 1000).toFixed(2)} s${quantized ? `, int8 ${(quantized.readyMs / 1000).toFixed(2)} s` : ''}`,
    met: Math.max(readyMs, quantized?.readyMs ?? 0) < 3000,
  });
  targets.push({
    target: 'SIGTERM to exit under 64-client load < DRAIN_TIMEOUT_MS (10 s)',
    measured: `${(exitMs / 1000).toFixed(2)} s`,
    met: exitMs < 10_000,
  });
  targets.push(...hostile.targets);

  const when = new Date().toISOString();
  const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
  const fmt = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '' : x.toFixed(d));
  const md = [
    `Benchmark of ${when} on ${machine}; ${seconds} s per load, \`npm run bench -- --seconds ${seconds}\`.`,
    '',
    '| model | path | clients | images/s | p50 ms | p99 ms | errors |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.model} | ${r.path} | ${r.concurrency} | ${r.imagesPerSecond.toFixed(0)} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${r.errors ?? ''} |`,
    ),
    '',
    '| target | measured | met |',
    '|---|---|---|',
    ...targets.map((t) => `| ${t.target} | ${t.measured} | ${t.met ? 'yes' : '**no**'} |`),
    '',
  ].join('\n');
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench/results/latest.md'), md);
  writeFileSync(
    path.join(ROOT, 'bench/results/latest.json'),
    `${JSON.stringify({ when, machine, seconds, rows, targets, readyMs, rssIdleMb: rssIdle, rssLoadedMb: rssLoaded, exitUnderLoadMs: exitMs, hostileMemory: hostile.rounds }, null, 2)}\n`,
  );
  process.stdout.write(md);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
