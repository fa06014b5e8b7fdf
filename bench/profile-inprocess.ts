/**
 * CPU profiles and before/after figures of the request path, for finding
 * per-request overhead on the hot path.
 *
 * DataPlane.classify at one caller, in process (no transport):
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/profile-inprocess.js [model] [seconds]
 *
 * The HTTP service in this process (the shipped models, the one-arm A/B
 * config below, request log lines at info level written to /dev/null the
 * way main.js writes them to stdout), loaded by autocannon from a child process,
 * so that the profile holds the server alone; prints requests per second:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/profile-inprocess.js [model] [seconds] \
 *     --http <workload> [--connections 1] [--root <checkout>]
 *
 * `--root` serves from another checkout's build (`git worktree add /tmp/before <commit>`,
 * its node_modules a symlink to this one's, `npx tsc -p .` there): the same
 * load against an older service. Workloads (the committed fixture images):
 * WORKLOADS below.
 *
 * Before and after, interleaved: each measurement is this script with
 * --http in a fresh process, the checkouts taking turns in every round
 * (which one goes first alternates), so a machine whose load drifts (a
 * training run on the same cores) weighs on both alike; prints a Markdown
 * table of the median per cell over the rounds:
 *
 *   node dist/bench/profile-inprocess.js compare --before /tmp/before [--after .] [--model baseline] \
 *     [--seconds 5] [--rounds 3] [--connections 1,64] [--workloads pixels,batch-json,...]
 *
 * A main-thread profile's busy time by group (express and body-parser, our
 * HTTP transport, log lines, Node's HTTP, the hand-over to the inference
 * thread, the rest of the service, ...):
 *
 *   node dist/bench/profile-inprocess.js groups /tmp/prof/CPU.*.0.001.cpuprofile
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import sharp from 'sharp';

const ROOT = path.resolve(__dirname, '..', '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'fashion-mnist');
const BATCH = 64;

// autocannon ships no types; its programmatic API is autocannon(options) -> Promise<result>.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = () => require('autocannon') as (opts: Record<string, unknown>) => Promise<any>;

interface Request {
  path: string;
  body: Buffer;
  headers: Record<string, string>;
  /** Images per request. */
  images: number;
  /** Whether the service before the binary inputs has this route form. */
  old: boolean;
}

/** The first `n` fixture images as 28x28 grayscale pixels, and their PNG files. */
async function fixtures(n: number): Promise<{ pixels: Buffer[]; pngs: Buffer[] }> {
  const files = (JSON.parse(readFileSync(path.join(FIXTURES, 'labels.json'), 'utf8')).images as { file: string }[])
    .slice(0, n)
    .map((f) => readFileSync(path.join(FIXTURES, f.file)));
  const pixels = await Promise.all(files.map((png) => sharp(png).greyscale().raw().toBuffer()));
  return { pixels, pngs: files };
}

function multipart(png: Buffer): { body: Buffer; contentType: string } {
  const boundary = 'profileboundary7d1f';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="item.png"\r\nContent-Type: image/png\r\n\r\n`),
    png,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

/** An OIP REST request with the binary tensor data extension: the JSON header, then the tensor bytes. */
function oipBinary(header: object, data: Buffer): Request['body'] & { headerLength: number } {
  const json = Buffer.from(JSON.stringify(header));
  return Object.assign(Buffer.concat([json, data]), { headerLength: json.length });
}

/** The workloads, by name. */
async function workloads(model: string): Promise<Record<string, Request>> {
  const { pixels, pngs } = await fixtures(BATCH);
  const json = { 'content-type': 'application/json' };
  const octets = { 'content-type': 'application/octet-stream' };
  const one = Array.from(pixels[0]);
  const uint8 = (n: number) => ({ name: 'pixels', shape: [n, 28, 28], datatype: 'UINT8' });
  const binary = oipBinary({ inputs: [{ ...uint8(1), parameters: { binary_data_size: 784 } }] }, pixels[0]);
  const binaryBatch = oipBinary({ inputs: [{ ...uint8(BATCH), parameters: { binary_data_size: BATCH * 784 } }] }, Buffer.concat(pixels));
  const png = multipart(pngs[0]);
  const infer = `/v2/models/${model}/infer`;
  return {
    /** POST /v1/classify {"pixels": [784 integers]}: the benchmark's main HTTP row. */
    pixels: { path: '/v1/classify', body: Buffer.from(JSON.stringify({ pixels: one })), headers: json, images: 1, old: true },
    /** POST /v1/classify, 784 raw bytes. */
    'pixels-raw': { path: '/v1/classify', body: pixels[0], headers: octets, images: 1, old: false },
    /** POST /v1/classify, a PNG file as multipart. */
    png: { path: '/v1/classify', body: png.body, headers: { 'content-type': png.contentType }, images: 1, old: true },
    /** POST /v1/classify/batch {"images": [{"pixels": [...]} x 64]}. */
    'batch-json': {
      path: '/v1/classify/batch',
      body: Buffer.from(JSON.stringify({ images: pixels.map((p) => ({ pixels: Array.from(p) })) })),
      headers: json,
      images: BATCH,
      old: true,
    },
    /** POST /v1/classify/batch, 64 x 784 raw bytes. */
    'batch-raw': { path: '/v1/classify/batch', body: Buffer.concat(pixels), headers: octets, images: BATCH, old: false },
    /** OIP REST, one UINT8 image as JSON numbers. */
    'oip-json': {
      path: infer,
      body: Buffer.from(JSON.stringify({ inputs: [{ ...uint8(1), data: one }] })),
      headers: json,
      images: 1,
      old: true,
    },
    /** OIP REST, one UINT8 image with the binary tensor data extension. */
    'oip-binary': {
      path: infer,
      body: binary,
      headers: { ...octets, 'inference-header-content-length': String(binary.headerLength) },
      images: 1,
      old: false,
    },
    /** OIP REST, 64 UINT8 images as JSON numbers. */
    'oip-json-batch': {
      path: infer,
      body: Buffer.from(JSON.stringify({ inputs: [{ ...uint8(BATCH), data: pixels.flatMap((p) => Array.from(p)) }] })),
      headers: json,
      images: BATCH,
      old: true,
    },
    /** OIP REST, 64 UINT8 images with the binary tensor data extension. */
    'oip-binary-batch': {
      path: infer,
      body: binaryBatch,
      headers: { ...octets, 'inference-header-content-length': String(binaryBatch.headerLength) },
      images: BATCH,
      old: false,
    },
  };
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

interface Measured {
  requestsPerSecond: number;
  imagesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Requests answered 2xx in the measured window. */
  requests: number;
  /**
   * CPU time of the server per request, in microseconds: of its main thread
   * (the event loop: HTTP, parsing, the pipeline; Linux schedstat) and of the
   * whole process (inference threads too). Far steadier than throughput on
   * a machine whose other load comes and goes, as it counts the work done,
   * not the time waited for a core.
   */
  mainCpuUsPerRequest?: number;
  processCpuUsPerRequest: number;
}

/** Nanoseconds the main thread (its thread id is the pid) has run on a CPU, from Linux's schedstat; undefined elsewhere. */
function mainThreadCpuNs(): number | undefined {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return undefined;
  }
}

/** The load generator, in its own process: `load <spec.json>`; prints one JSON line. */
async function load(specFile: string): Promise<void> {
  const spec = JSON.parse(readFileSync(specFile, 'utf8'));
  const opts = {
    url: spec.url,
    method: 'POST',
    body: Buffer.from(spec.body, 'base64'),
    headers: { ...spec.headers, 'x-routing-key': 'bench-customer' },
    connections: spec.connections,
  };
  await autocannon()({ ...opts, duration: spec.warmup });
  process.stdout.write('measuring\n');
  const r = await autocannon()({ ...opts, duration: spec.seconds });
  process.stdout.write('measured\n');
  const rps = r['2xx'] / spec.seconds;
  const out = {
    requestsPerSecond: rps,
    imagesPerSecond: rps * spec.images,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    errors: r.non2xx + r.errors + r.timeouts,
    requests: r['2xx'],
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/** Run this script (or another) in a child process: its stdout; `onLine` sees each line as it comes. */
function runNode(args: string[], onLine?: (line: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      const before = out.length;
      out += d;
      if (onLine)
        for (const line of out
          .slice(out.lastIndexOf('\n', before - 1) + 1)
          .split('\n')
          .slice(0, -1))
          onLine(line);
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')} exited ${code}`))));
  });
}

/** The service of `root` (a checkout with a build) in this process, loaded over HTTP from a child process. */
async function http(model: string, seconds: number, workload: string, connections: number, root: string): Promise<Measured> {
  const req = (await workloads(model))[workload];
  if (!req) throw new Error(`unknown workload ${workload}; one of ${Object.keys(await workloads(model)).join(', ')}`);
  const dist = path.join(path.resolve(root), 'dist', 'src');
  /* eslint-disable @typescript-eslint/no-require-imports */
  const config = require(path.join(dist, 'config'));
  const logger = require(path.join(dist, 'core', 'logger'));
  const { createService: create } = require(path.join(dist, 'service'));
  /* eslint-enable @typescript-eslint/no-require-imports */
  const routing = path.join(os.tmpdir(), `pc-profile-routing-${model}.json`);
  writeFileSync(routing, JSON.stringify({ experiment: 'profile', control: model, arms: [{ name: model, model, weight: 1 }] }));
  const service = await create(
    config.loadConfig({
      MODEL_DIR: path.join(path.resolve(root), 'models'),
      ROUTING_FILE: routing,
      HTTP_PORT: '0',
      GRPC_PORT: '0',
      METRICS_PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
    }),
    // The service's own log destination (buffered where that checkout buffers), writing to /dev/null.
    logger.createLogger(
      'info',
      pino.destination({
        dest: '/dev/null',
        sync: false,
        minLength: logger.LOG_BUFFER?.minLength ?? 0,
        periodicFlush: logger.LOG_BUFFER?.periodicFlushMs ?? 0,
      }),
    ),
  );
  const { httpPort } = await service.start();
  const spec = path.join(os.tmpdir(), `pc-profile-load-${process.pid}.json`);
  writeFileSync(
    spec,
    JSON.stringify({
      url: `http://127.0.0.1:${httpPort}${req.path}`,
      body: req.body.toString('base64'),
      headers: req.headers,
      connections,
      seconds,
      warmup: 1,
      images: req.images,
    }),
  );
  // CPU time over the measured window only (the load child says when its warm-up ends and its measurement stops).
  let cpu0 = process.cpuUsage();
  let main0 = mainThreadCpuNs();
  let cpu = { user: 0, system: 0 };
  let main: number | undefined;
  const out = await runNode([__filename, 'load', spec], (line) => {
    if (line === 'measuring') {
      cpu0 = process.cpuUsage();
      main0 = mainThreadCpuNs();
    } else if (line === 'measured') {
      cpu = process.cpuUsage(cpu0);
      const now = mainThreadCpuNs();
      main = now !== undefined && main0 !== undefined ? now - main0 : undefined;
    }
  });
  await service.stop();
  const m = JSON.parse(out.trim().split('\n').pop()!) as Measured;
  m.processCpuUsPerRequest = (cpu.user + cpu.system) / m.requests;
  if (main !== undefined) m.mainCpuUsPerRequest = main / 1000 / m.requests;
  return m;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function compare(args: string[]): Promise<void> {
  const before = flag(args, '--before');
  if (!before) throw new Error('compare needs --before <checkout>');
  const after = flag(args, '--after') ?? ROOT;
  const model = flag(args, '--model') ?? 'baseline';
  const seconds = flag(args, '--seconds') ?? '5';
  const rounds = Number(flag(args, '--rounds') ?? 3);
  const connections = (flag(args, '--connections') ?? '1,64').split(',');
  const all = await workloads(model);
  const names = (flag(args, '--workloads') ?? Object.keys(all).join(',')).split(',');
  const results = new Map<string, Measured[]>();
  const key = (side: string, w: string, c: string) => `${side} ${w} ${c}`;
  for (let round = 0; round < rounds; round++) {
    for (const w of names) {
      for (const c of connections) {
        const sides: Array<['before' | 'after', string]> = [
          ['before', before],
          ['after', after],
        ];
        if (round % 2 === 1) sides.reverse();
        for (const [side, root] of sides) {
          if (side === 'before' && !all[w].old) continue;
          const out = await runNode([__filename, model, seconds, '--http', w, '--connections', c, '--root', root]);
          const m = JSON.parse(out.trim().split('\n').pop()!) as Measured;
          results.set(key(side, w, c), [...(results.get(key(side, w, c)) ?? []), m]);
          process.stderr.write(
            `round ${round + 1} ${side} ${w} c=${c}: ${m.imagesPerSecond.toFixed(0)} images/s, p99 ${m.p99Ms} ms, main thread ${m.mainCpuUsPerRequest?.toFixed(0)} µs/request\n`,
          );
        }
      }
    }
  }
  const med = (side: string, w: string, c: string, f: (m: Measured) => number | undefined) => {
    const values = (results.get(key(side, w, c)) ?? []).map(f).filter((v): v is number => v !== undefined);
    return values.length ? median(values) : undefined;
  };
  const fmt = (v: number | undefined, digits = 0) => (v === undefined ? '—' : v.toFixed(digits));
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? '' : (a / b).toFixed(2));
  const lines = [
    `${model}, ${rounds} interleaved rounds of ${seconds} s, ${os.cpus().length} cores, loadavg ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} at the end; medians over the rounds. Throughput and p99 move with the machine's other load;`,
    "the server's CPU time per request (main thread: the event loop; process: inference threads too) is the steadier figure.",
    '',
    '| workload | connections | images/s before | after | after / before | p99 ms before | after | main-thread CPU µs/request before | after | after / before | process CPU µs/image before | after |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const w of names) {
    for (const c of connections) {
      const ips = (side: string) => med(side, w, c, (m) => m.imagesPerSecond);
      const p99 = (side: string) => med(side, w, c, (m) => m.p99Ms);
      const main = (side: string) => med(side, w, c, (m) => m.mainCpuUsPerRequest);
      const proc = (side: string) => med(side, w, c, (m) => (m.processCpuUsPerRequest * m.requestsPerSecond) / m.imagesPerSecond);
      const errors = [...(results.get(key('before', w, c)) ?? []), ...(results.get(key('after', w, c)) ?? [])].reduce(
        (n, m) => n + m.errors,
        0,
      );
      lines.push(
        `| ${w}${errors ? ` (${errors} errors)` : ''} | ${c} | ${fmt(ips('before'))} | ${fmt(ips('after'))} | ${ratio(ips('after'), ips('before'))} | ${fmt(
          p99('before'),
        )} | ${fmt(p99('after'))} | ${fmt(main('before'))} | ${fmt(main('after'))} | ${ratio(main('after'), main('before'))} | ${fmt(proc('before'))} | ${fmt(
          proc('after'),
        )} |`,
      );
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** What a main-thread profile's self time went to, in groups that tell the HTTP path's share: by package or file (as cpuprofile-summary names them). */
const GROUPS: Array<[string, (pkg: string) => boolean]> = [
  [
    'express, router, body-parser and their helpers',
    (k) =>
      /^(express|router|body-parser|raw-body|parseurl|content-type|type-is|iconv-lite|on-finished|finalhandler|path-to-regexp|encodeurl|media-typer|mime-types|mime-db|http-errors|depd|statuses|qs|negotiator|accepts|fresh|vary|send|serve-static)$/.test(
        k,
      ),
  ],
  ['our HTTP transport (src/transport/http)', (k) => k.startsWith('ours: src/transport/http/')],
  ['log lines: pino and the write', (k) => ['pino', 'writeString', 'sonic-boom', 'fast-redact', 'quick-format-unescaped'].includes(k)],
  [
    'Node HTTP and sockets (node:_http_*, streams, events, writev)',
    (k) => /^node:(_http|internal\/streams|events|internal\/stream_base|net|buffer)/.test(k) || k === 'writev',
  ],
  [
    'handing batches to the inference thread (postMessage)',
    (k) => k === 'postMessage' || /messageport|internal\/worker|event_target/.test(k),
  ],
  ['the rest of the service (core, models, monitoring, feedback)', (k) => k.startsWith('ours: src/')],
  ['prom-client, crypto (receipts)', (k) => k === 'prom-client' || /crypto/.test(k)],
  ['garbage collector, (program)', (k) => k === '(garbage collector)' || k === '(program)'],
];

/** `groups <file.cpuprofile>`: the busy (not idle) time of a profile by GROUPS. */
function groups(file: string): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: Array<{ id: number; callFrame: { functionName: string; url: string } }>;
    samples: number[];
    timeDeltas: number[];
  };
  const time = new Map<number, number>();
  profile.samples.forEach((id, i) => time.set(id, (time.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byPackage = new Map<string, number>();
  for (const node of profile.nodes) {
    const t = time.get(node.id) ?? 0;
    const { url, functionName } = node.callFrame;
    const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    const ours = /\/dist\/(.*)$/.exec(url);
    const pkg = modules ? modules[1] : ours ? `ours: ${ours[1]}` : url || functionName || '(unknown)';
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + t);
  }
  const total = [...byPackage.values()].reduce((a, b) => a + b, 0);
  const busy = total - (byPackage.get('(idle)') ?? 0);
  const sums = GROUPS.map(([name]) => [name, 0] as [string, number]);
  let other = 0;
  for (const [pkg, t] of byPackage) {
    if (pkg === '(idle)') continue;
    const g = GROUPS.findIndex(([, match]) => match(pkg));
    if (g >= 0) sums[g][1] += t;
    else other += t;
  }
  sums.push(['other (module loading at start, the bench harness, ...)', other]);
  const lines = [`busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s; of the busy time:`];
  for (const [name, t] of sums) lines.push(`${((100 * t) / busy).toFixed(1).padStart(6)}%  ${name}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** DataPlane.classify at one caller, in process. */
async function inProcess(model: string, seconds: number): Promise<void> {
  // Loaded here, not at the top: the other modes serve another checkout's build or only drive load.
  const { loadConfig } = await import('../src/config');
  const { createLogger } = await import('../src/core/logger');
  const { createService } = await import('../src/service');
  const { readTestSet } = await import('../src/tools/fashion-mnist');
  const routing = path.join(os.tmpdir(), `pc-profile-routing-${model}.json`);
  writeFileSync(routing, JSON.stringify({ experiment: 'profile', control: model, arms: [{ name: model, model, weight: 1 }] }));
  const service = await createService(
    loadConfig({
      MODEL_DIR: path.join(ROOT, 'models'),
      ROUTING_FILE: routing,
      HTTP_PORT: '0',
      GRPC_PORT: '0',
      METRICS_PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
    }),
    createLogger('silent'),
  );
  await service.start();
  const { images } = readTestSet();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const k = n % 1000;
    await service.dataplane.classify(
      { kind: 'pixels', pixels: images.pixels.subarray(k * 784, (k + 1) * 784) },
      { routingKey: `customer-${n % 1000}` },
    );
    n++;
  }
  process.stdout.write(`${model}: ${((1e6 * (performance.now() - t0)) / 1000 / n).toFixed(0)} us per classify at 1 caller (${n} calls)\n`);
  await service.stop();
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === 'load') return load(args[1]);
  if (args[0] === 'compare') return compare(args.slice(1));
  if (args[0] === 'groups') return groups(args[1]);
  const model = args[0] && !args[0].startsWith('--') ? args[0] : 'baseline';
  const seconds = Number(args[1] && !args[1].startsWith('--') ? args[1] : 5);
  const workload = flag(args, '--http');
  if (!workload) return inProcess(model, seconds);
  const connections = Number(flag(args, '--connections') ?? 1);
  const m = await http(model, seconds, workload, connections, flag(args, '--root') ?? ROOT);
  process.stderr.write(
    `${model} ${workload}, ${connections} connection(s): ${m.requestsPerSecond.toFixed(0)} requests/s, ${m.imagesPerSecond.toFixed(0)} images/s, p50 ${m.p50Ms} ms, p99 ${m.p99Ms} ms, ${m.errors} errors; CPU per request: main thread ${m.mainCpuUsPerRequest?.toFixed(0)} µs, process ${m.processCpuUsPerRequest.toFixed(0)} µs\n`,
  );
  process.stdout.write(`${JSON.stringify(m)}\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
