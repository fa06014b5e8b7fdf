/**
 * Load generators for the benchmark: autocannon and wrk for HTTP, a closed-loop
 * @grpc/grpc-js client for unary gRPC, and a windowed writer for the
 * ClassifyStream. Each returns throughput and latency percentiles.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { LOADER_OPTIONS, PRODUCT_PROTO } from '../src/transport/grpc/protos';

// autocannon ships no types; its programmatic API is autocannon(options) -> Promise<result>.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon') as (opts: Record<string, unknown>) => Promise<any>;

export interface LoadResult {
  /** Requests per second answered with 2xx. */
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export async function httpLoad(opts: {
  url: string;
  body: Buffer | string;
  contentType: string;
  connections: number;
  seconds: number;
}): Promise<LoadResult> {
  const r = await autocannon({
    url: opts.url,
    method: 'POST',
    body: opts.body,
    headers: { 'content-type': opts.contentType, 'x-routing-key': 'bench-customer' },
    connections: opts.connections,
    duration: opts.seconds,
  });
  const ok = r['2xx'] as number;
  return { requestsPerSecond: ok / opts.seconds, p50Ms: r.latency.p50, p99Ms: r.latency.p99, errors: r.non2xx + r.errors + r.timeouts };
}

/** wrk (Debian's package) on PATH, or undefined. */
export function wrkAvailable(): boolean {
  return spawnSync('wrk', ['--version']).error === undefined;
}

/** wrk's Lua hooks: POST the body file with the content type, and print the summary as one JSON line. */
const WRK_SCRIPT = `
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE")
wrk.headers["X-Routing-Key"] = "bench-customer"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"status":%d,"socket":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
`;

/**
 * The same closed-loop load from wrk, a C load generator with one thread:
 * it leaves the server more of the machine than autocannon (which runs in
 * this process). `cpus` pins wrk to those CPUs with taskset.
 */
export async function wrkLoad(opts: {
  url: string;
  body: Buffer | string;
  contentType: string;
  connections: number;
  seconds: number;
  cpus?: string;
}): Promise<LoadResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-wrk-'));
  writeFileSync(path.join(dir, 'body'), opts.body);
  writeFileSync(path.join(dir, 'post.lua'), WRK_SCRIPT);
  const argv = ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '-s', path.join(dir, 'post.lua'), opts.url];
  const [cmd, args] = opts.cpus ? ['taskset', ['-c', opts.cpus, 'wrk', ...argv]] : ['wrk', argv];
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, WRK_BODY: path.join(dir, 'body'), WRK_CONTENT_TYPE: opts.contentType },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`))));
  });
  const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk printed no summary: ${out}`);
  const r = JSON.parse(line.slice('WRK_JSON '.length)) as Record<string, number>;
  const ok = r.requests - r.status;
  return { requestsPerSecond: ok / (r.durationUs / 1e6), p50Ms: r.p50Us / 1000, p99Ms: r.p99Us / 1000, errors: r.status + r.socket };
}

/**
 * Open-loop HTTP load at a steady rate: request i is due at start + i/rate
 * and its latency counts from that moment (so time spent waiting for a free
 * connection counts too: no coordinated omission). autocannon's rate limit
 * sends each second's quota in a burst, which measures the burst, not the rate.
 */
export async function httpPacedLoad(opts: {
  url: string;
  body: string;
  contentType: string;
  rate: number;
  seconds: number;
  connections: number;
}): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.connections });
  const url = new URL(opts.url);
  const total = Math.round(opts.rate * opts.seconds);
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const one = (due: number) =>
    new Promise<void>((resolve) => {
      const req = http.request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'content-type': opts.contentType, 'content-length': Buffer.byteLength(opts.body), 'x-routing-key': 'bench-customer' },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) latencies.push(performance.now() - due);
            else errors++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(opts.body);
    });
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / opts.rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(one(due));
  }
  await Promise.all(pending);
  agent.destroy();
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { requestsPerSecond: latencies.length / elapsed, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99), errors };
}

function percentile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
}

export function productClient(target: string): grpc.Client & Record<string, any> {
  const def = protoLoader.loadSync([PRODUCT_PROTO], LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as any;
  return new pkg.classifier.v1.ProductClassifier(target, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 << 20,
  });
}

/** `concurrency` callers each with one unary Classify in flight, for `seconds`. */
export async function grpcUnaryLoad(client: any, request: unknown, concurrency: number, seconds: number): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const caller = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      await new Promise<void>((resolve) =>
        client.Classify(request, (err: Error | null) => {
          if (err) errors++;
          else latencies.push(performance.now() - t0);
          resolve();
        }),
      );
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, caller));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { requestsPerSecond: latencies.length / elapsed, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99), errors };
}

/** One ClassifyStream: `total` requests written as flow control allows; images per second. */
export async function grpcStreamLoad(client: any, request: unknown, total: number): Promise<LoadResult> {
  const started = performance.now();
  let received = 0;
  let errors = 0;
  await new Promise<void>((resolve, reject) => {
    const call = client.ClassifyStream();
    call.on('data', (r: { error?: unknown }) => {
      if (r.error) errors++;
      if (++received === total) call.end();
    });
    call.on('error', reject);
    call.on('end', resolve);
    let sent = 0;
    const write = () => {
      while (sent < total) {
        sent++;
        if (!call.write(request)) return call.once('drain', write);
      }
    };
    write();
  });
  const elapsed = (performance.now() - started) / 1000;
  return { requestsPerSecond: received / elapsed, p50Ms: NaN, p99Ms: NaN, errors };
}
