/**
 * Soak test: the built service under steady mixed traffic for a long while,
 * watching its memory. Not part of `npm test`; run it by itself:
 *
 *   npm run build && npm run soak -- [--minutes 10] [--warmup-minutes 2] [--rate 200]
 *   (or: node dist/bench/soak.js ...)
 *
 * It starts `node dist/src/main.js` on free ports with an A/B config that
 * splits customers 50/50 between the baseline and the dendritic model (and
 * shadows 5% of images to the dendritic one), then sends, open loop at
 * `--rate` requests/s in all, test-set images with 1,000 routing keys:
 * HTTP /v1/classify as pixel JSON and as PNG multipart, HTTP
 * /v1/classify/batch of 16 pixel images, gRPC Classify (PNG) and a gRPC
 * ClassifyStream (pixels, a new stream every 1,000 images), and the true
 * label back for `--feedback` of the answers, 2 s later, over the transport
 * that answered. Every `--sample-seconds` it reads the service's VmRSS from
 * /proc, its heap, handles and event-loop lag from the metrics endpoint, and
 * GET /v1/ab (so the A/B and drift reports are computed too).
 *
 * Passes (exit 0) with no failed request (non-2xx, gRPC error, failed batch
 * or stream item, connection error) over the whole run and resident memory
 * grown less than 10% after the warm-up: the median of the first minute
 * after it against the median of the last minute. Writes
 * bench/results/soak.json (every sample and the summary) and soak.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { readTestSet } from '../src/tools/fashion-mnist';
import { CallError, grpcClient, httpClient, type ServiceClient } from '../src/tools/replay/clients';
import { encodePng, seededRandom } from '../src/tools/replay/perturb';
import { startServiceProcess } from '../test/support/processes';
import { productClient } from './load';

const ROOT = path.resolve(__dirname, '..', '..');
const GROWTH_LIMIT = 0.1;
const BATCH_IMAGES = 16;
const STREAM_LENGTH = 1000;
const KEYS = 1000;

/** Share of the classify requests per kind; feedback comes on top, for a share of the answers. */
const MIX = { 'http-json': 0.3, 'http-png': 0.2, 'http-batch': 0.05, 'grpc-unary': 0.25, 'grpc-stream': 0.2 } as const;
type ClassifyKind = keyof typeof MIX;
type Kind = ClassifyKind | 'feedback-http' | 'feedback-grpc' | 'metrics' | 'ab-report';
const PACED: Kind[] = [...(Object.keys(MIX) as ClassifyKind[]), 'feedback-http', 'feedback-grpc'];

interface Options {
  minutes: number;
  warmupMinutes: number;
  /** Requests per second in all, feedback included. */
  rate: number;
  feedback: number;
  sampleSeconds: number;
  concurrency: number;
  out: string;
  note: string;
}

function parseArgs(a: string[]): Options {
  const get = (flag: string, dflt: string) => (a.includes(flag) ? a[a.indexOf(flag) + 1] : dflt);
  const num = (flag: string, dflt: number) => {
    const v = Number(get(flag, String(dflt)));
    if (!Number.isFinite(v) || v < 0) throw new Error(`${flag} must be a non-negative number`);
    return v;
  };
  return {
    minutes: num('--minutes', 10),
    warmupMinutes: num('--warmup-minutes', 2),
    rate: num('--rate', 200),
    feedback: num('--feedback', 0.25),
    sampleSeconds: num('--sample-seconds', 5),
    concurrency: num('--concurrency', 64),
    out: path.resolve(get('--out', path.join(ROOT, 'bench', 'results'))),
    note: get('--note', ''),
  };
}

/** One request's answer: predictions that may get feedback, or the error code. */
type Outcome = { ok: true; ids: { id: string; label: number }[] } | { ok: false; code: string; message: string };

interface KindStats {
  requests: number;
  errors: number;
  errorCodes: Record<string, number>;
  /** Latencies (ms, from the moment the request was due) after the warm-up. */
  latencies: number[];
}

interface Sample {
  /** Seconds since the load started. */
  t: number;
  rssMb: number;
  heapUsedMb: number | null;
  heapTotalMb: number | null;
  externalMb: number | null;
  activeHandles: number | null;
  eventLoopLagP99Ms: number | null;
  requests: number;
  errors: number;
  /** Paced requests answered since the previous sample, and their p99 latency. */
  intervalRequests: number;
  intervalP99Ms: number | null;
  loadAverage1m: number;
}

const percentile = (sorted: number[], q: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
const round = (x: number, d = 1) => (Number.isFinite(x) ? Number(x.toFixed(d)) : null);

function vmRssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Sum of a metric's series in Prometheus text (null when absent). */
function metric(text: string, name: string): number | null {
  let sum: number | null = null;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([-0-9.e+]+)$`, 'gm'))) sum = (sum ?? 0) + Number(m[1]);
  return sum;
}

/** Command lines of other processes that look like the training job sharing the cores. */
function backgroundJobs(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      if (/pctrain|train\.py/.test(cmd)) found.push(cmd);
    } catch {
      /* gone */
    }
  }
  return found;
}

/** HTTP POST of a JSON body; a non-2xx answer, an item error or a refused connection is a failure. */
async function postJson(base: string, route: string, body: string, key: string, labels: number[]): Promise<Outcome> {
  let res: Response;
  try {
    res = await fetch(`${base}${route}`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'x-routing-key': key },
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    return { ok: false, code: 'CONNECTION', message: String((err as Error).cause ?? (err as Error).message) };
  }
  const b = (await res.json().catch(() => null)) as any;
  if (!res.ok || !b) return { ok: false, code: b?.error?.code ?? `HTTP_${res.status}`, message: b?.error?.message ?? res.statusText };
  const items: any[] = Array.isArray(b.results) ? b.results : [b];
  const failed = items.find((r) => r.error);
  if (failed) return { ok: false, code: `ITEM_${failed.error.code}`, message: failed.error.message };
  return { ok: true, ids: items.map((r, i) => ({ id: r.predictionId as string, label: labels[i] })) };
}

async function viaClient(call: () => Promise<{ predictionId: string }>, label: number): Promise<Outcome> {
  try {
    return { ok: true, ids: [{ id: (await call()).predictionId, label }] };
  } catch (err) {
    return { ok: false, code: err instanceof CallError ? err.code : 'CLIENT', message: (err as Error).message };
  }
}

/**
 * ClassifyStream requests written onto one long-lived stream, replaced by a
 * fresh one every STREAM_LENGTH requests; each request resolves with its
 * StreamResult (matched by index), or fails with the stream.
 */
class StreamLane {
  private call: grpc.ClientDuplexStream<unknown, any> | null = null;
  private written = 0;
  private pending = new Map<number, (o: Outcome) => void>();
  readonly ended: Promise<void>[] = [];

  constructor(private readonly client: any) {}

  /** `request.tag` carries the true label, for the feedback. */
  send(request: { tag: string; [field: string]: unknown }): Promise<Outcome> {
    if (!this.call || this.written === STREAM_LENGTH) this.open();
    const index = this.written++;
    const answer = new Promise<Outcome>((resolve) => this.pending.set(index, resolve));
    this.call!.write(request);
    return answer;
  }

  private open(): void {
    this.call?.end();
    const call: grpc.ClientDuplexStream<unknown, any> = this.client.ClassifyStream();
    const pending = new Map<number, (o: Outcome) => void>();
    const failAll = (code: string, message: string) => {
      for (const resolve of pending.values()) resolve({ ok: false, code, message });
      pending.clear();
      if (this.call === call) this.call = null;
    };
    call.on('data', (r: any) => {
      const resolve = pending.get(r.index);
      pending.delete(r.index);
      if (r.error) resolve?.({ ok: false, code: `ITEM_${r.error.code}`, message: r.error.message });
      else resolve?.({ ok: true, ids: [{ id: r.classification.prediction_id, label: Number(r.tag) }] });
    });
    this.ended.push(
      new Promise((done) => {
        call.on('error', (err: grpc.ServiceError) => {
          failAll(
            (err.metadata?.get('x-error-code')[0] as string | undefined) ?? grpc.status[err.code] ?? 'STREAM',
            err.details || err.message,
          );
          done();
        });
        call.on('end', () => {
          failAll('STREAM_ENDED', 'the stream ended before answering');
          done();
        });
      }),
    );
    this.call = call;
    this.pending = pending;
    this.written = 0;
  }

  async close(): Promise<void> {
    this.call?.end();
    this.call = null;
    await Promise.all(this.ended);
  }
}

async function main(opts: Options): Promise<number> {
  const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'pc-soak-'));
  const routing = {
    experiment: 'soak',
    coverage: 1.0,
    control: 'baseline',
    arms: [
      { name: 'baseline', model: 'baseline', weight: 50 },
      { name: 'dendritic', model: 'dendritic', weight: 50 },
    ],
    shadow: { model: 'dendritic', fraction: 0.05 },
  };
  writeFileSync(path.join(tmp, 'routing.json'), JSON.stringify(routing));

  // The traffic: the official test set; PNGs of the first 1,000 images, encoded once.
  const { images, labels } = readTestSet();
  const pixelsOf = (i: number) => Array.from(images.pixels.subarray(i * 784, (i + 1) * 784));
  const pngs = await Promise.all(
    Array.from({ length: 1000 }, (_, i) => encodePng({ width: 28, height: 28, data: images.pixels.subarray(i * 784, (i + 1) * 784) })),
  );
  const random = seededRandom(42);
  const pick = (n: number) => Math.floor(random() * n);

  const background = backgroundJobs();
  log(`starting the service${background.length ? `; running alongside: ${background.join(' | ')}` : ''}`);
  const svc = await startServiceProcess({ ROUTING_FILE: path.join(tmp, 'routing.json'), RECEIPT_SECRET: randomBytes(24).toString('hex') });
  const pid = svc.child.pid!;
  const http = httpClient(svc.http);
  const grpcTarget = `127.0.0.1:${svc.grpcPort}`;
  const unary: ServiceClient = grpcClient(grpcTarget);
  const streamClient = productClient(grpcTarget);
  const lane = new StreamLane(streamClient);

  const stats = new Map<Kind, KindStats>();
  const statsOf = (k: Kind) => stats.get(k) ?? (stats.set(k, { requests: 0, errors: 0, errorCodes: {}, latencies: [] }), stats.get(k)!);
  const firstErrors: { t: number; kind: Kind; code: string; message: string }[] = [];
  let interval: number[] = [];
  const warmupS = opts.warmupMinutes * 60;
  const totalS = warmupS + opts.minutes * 60;
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;

  const inFlight = new Set<Promise<void>>();
  const timers = new Set<NodeJS.Timeout>();
  /** Run one request due at `due`, and count what came back. */
  const track = (kind: Kind, due: number, run: () => Promise<Outcome>, onIds?: (o: Extract<Outcome, { ok: true }>) => void) => {
    const p: Promise<void> = run()
      .then((o) => {
        const s = statsOf(kind);
        s.requests++;
        const ms = performance.now() - due;
        if (PACED.includes(kind)) {
          interval.push(ms);
          if ((due - started) / 1000 >= warmupS) s.latencies.push(ms);
        }
        if (!o.ok) {
          s.errors++;
          s.errorCodes[o.code] = (s.errorCodes[o.code] ?? 0) + 1;
          if (firstErrors.length < 20) firstErrors.push({ t: round(elapsed())!, kind, code: o.code, message: o.message.slice(0, 200) });
        } else onIds?.(o);
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    return p;
  };

  /** Ground truth for one of the request's predictions, 2 s later, over the transport that answered. */
  const maybeFeedback = (grpcAnswered: boolean) => (o: Extract<Outcome, { ok: true }>) => {
    if (random() >= opts.feedback || elapsed() >= totalS) return;
    const { id, label } = o.ids[pick(o.ids.length)];
    const timer = setTimeout(() => {
      timers.delete(timer);
      const client = grpcAnswered ? unary : http;
      void track(grpcAnswered ? 'feedback-grpc' : 'feedback-http', performance.now(), async () => {
        try {
          await client.feedback(id, label);
          return { ok: true, ids: [] };
        } catch (err) {
          return { ok: false, code: err instanceof CallError ? err.code : 'CLIENT', message: (err as Error).message };
        }
      });
    }, 2000);
    timers.add(timer);
  };

  const kinds = Object.keys(MIX) as ClassifyKind[];
  const cumulative = kinds.map(
    (
      (sum) => (k: ClassifyKind) =>
        (sum += MIX[k])
    )(0),
  );
  const send = (kind: ClassifyKind, due: number) => {
    const key = `customer-${pick(KEYS)}`;
    const i = pick(images.count);
    switch (kind) {
      case 'http-json':
        return track(
          kind,
          due,
          () => postJson(svc.http, '/v1/classify', JSON.stringify({ pixels: pixelsOf(i) }), key, [labels[i]]),
          maybeFeedback(false),
        );
      case 'http-png': {
        const k = pick(pngs.length);
        return track(kind, due, () => viaClient(() => http.classify(pngs[k], 'image/png', key), labels[k]), maybeFeedback(false));
      }
      case 'http-batch': {
        const idx = Array.from({ length: BATCH_IMAGES }, () => pick(images.count));
        const body = JSON.stringify({ images: idx.map((j) => ({ pixels: pixelsOf(j) })) });
        return track(
          kind,
          due,
          () =>
            postJson(
              svc.http,
              '/v1/classify/batch',
              body,
              key,
              idx.map((j) => labels[j]),
            ),
          maybeFeedback(false),
        );
      }
      case 'grpc-unary': {
        const k = pick(pngs.length);
        return track(kind, due, () => viaClient(() => unary.classify(pngs[k], 'image/png', key), labels[k]), maybeFeedback(true));
      }
      case 'grpc-stream':
        return track(
          kind,
          due,
          () => lane.send({ image: { pixels: { values: pixelsOf(i) } }, routing_key: key, tag: String(labels[i]) }),
          maybeFeedback(true),
        );
    }
  };

  const getOk = async (url: string): Promise<Outcome> => {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      await res.arrayBuffer();
      return res.ok ? { ok: true, ids: [] } : { ok: false, code: `HTTP_${res.status}`, message: res.statusText };
    } catch (err) {
      return { ok: false, code: 'CONNECTION', message: (err as Error).message };
    }
  };

  // Samples: VmRSS, the service's own process metrics, and the A/B report.
  const samples: Sample[] = [];
  const sample = async () => {
    const t = elapsed();
    const rssMb = vmRssMb(pid);
    let text = '';
    const t0 = performance.now();
    const scraped = track('metrics', t0, async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${svc.metricsPort}/metrics`, { signal: AbortSignal.timeout(10_000) });
        text = await res.text();
        return res.ok ? { ok: true, ids: [] } : { ok: false, code: `HTTP_${res.status}`, message: text.slice(0, 200) };
      } catch (err) {
        return { ok: false, code: 'CONNECTION', message: (err as Error).message };
      }
    });
    await Promise.all([scraped, track('ab-report', t0, () => getOk(`${svc.http}/v1/ab`))]);
    const mb = (x: number | null) => (x === null ? null : round(x / 2 ** 20, 2));
    const lag = metric(text, 'nodejs_eventloop_lag_p99_seconds');
    const sorted = interval.sort((a, b) => a - b);
    let requests = 0;
    let errors = 0;
    for (const s of stats.values()) {
      requests += s.requests;
      errors += s.errors;
    }
    samples.push({
      t: round(t)!,
      rssMb: round(rssMb, 2)!,
      heapUsedMb: mb(metric(text, 'nodejs_heap_size_used_bytes')),
      heapTotalMb: mb(metric(text, 'nodejs_heap_size_total_bytes')),
      externalMb: mb(metric(text, 'nodejs_external_memory_bytes')),
      activeHandles: metric(text, 'nodejs_active_handles'),
      eventLoopLagP99Ms: lag === null ? null : round(lag * 1000, 2),
      requests,
      errors,
      intervalRequests: sorted.length,
      intervalP99Ms: sorted.length ? round(percentile(sorted, 0.99), 2) : null,
      loadAverage1m: round(os.loadavg()[0], 2)!,
    });
    interval = [];
  };

  // The load: request n is due at start + n / classifyRate, open loop, at most `concurrency` in flight.
  const classifyRate = opts.rate / (1 + opts.feedback);
  log(
    `load: ${opts.rate} req/s (${classifyRate.toFixed(0)} classify + feedback for ${100 * opts.feedback}% of answers) for ${opts.warmupMinutes} min warm-up + ${opts.minutes} min; service pid ${pid}`,
  );
  let nextSample = 0;
  let sampling: Promise<void> = Promise.resolve();
  let lastLog = 0;
  for (let n = 0; ; n++) {
    const due = started + (n / classifyRate) * 1000;
    if ((due - started) / 1000 >= totalS) break;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    if (elapsed() >= nextSample) {
      nextSample += opts.sampleSeconds;
      sampling = sampling.then(sample);
    }
    while (inFlight.size >= opts.concurrency) await Promise.race(inFlight);
    if (svc.child.exitCode !== null || svc.child.signalCode !== null) {
      throw new Error(`the service exited (${svc.child.exitCode ?? svc.child.signalCode}) during the soak:\n${svc.output().slice(-4000)}`);
    }
    const r = random();
    const k = cumulative.findIndex((c) => r < c);
    void send(kinds[k < 0 ? kinds.length - 1 : k], due);
    if (elapsed() - lastLog >= 60) {
      lastLog = elapsed();
      const s = samples[samples.length - 1];
      if (s)
        log(
          `${(s.t / 60).toFixed(1)} min: ${s.requests} requests, ${s.errors} errors, RSS ${s.rssMb.toFixed(0)} MB, heap ${s.heapUsedMb?.toFixed(0)} MB, p99 ${s.intervalP99Ms} ms, load ${s.loadAverage1m}`,
        );
    }
  }
  for (const t of timers) clearTimeout(t); // labels not yet due when the load ends are not sent
  timers.clear();
  while (inFlight.size) await Promise.all(inFlight);
  await lane.close();
  await sampling;
  await sample(); // the end
  http.close();
  unary.close();
  streamClient.close();
  const exitCode = await svc.stop();
  const logLines = svc
    .output()
    .split('\n')
    .filter((l) => l.trim());

  // Summary: errors over the whole run; latency, memory growth after the warm-up.
  const all = [...stats.values()];
  const requests = all.reduce((s, k) => s + k.requests, 0);
  const errors = all.reduce((s, k) => s + k.errors, 0);
  const latencies = PACED.flatMap((k) => stats.get(k)?.latencies ?? []).sort((a, b) => a - b);
  const end = samples[samples.length - 1];
  const after = samples.filter((s) => s.t >= warmupS);
  const atWarmup = samples.reduce((best, s) => (Math.abs(s.t - warmupS) < Math.abs(best.t - warmupS) ? s : best));
  const window = Math.min(60, (end.t - warmupS) / 4);
  const firstWindow = after.filter((s) => s.t <= warmupS + window);
  const lastWindow = after.filter((s) => s.t >= end.t - window);
  const rssFirst = median(firstWindow.map((s) => s.rssMb));
  const rssLast = median(lastWindow.map((s) => s.rssMb));
  // Heap used is a sawtooth between collections; its lowest point in a window is the live set.
  const heap = (xs: Sample[]) => Math.min(...xs.map((s) => s.heapUsedMb ?? NaN));
  const growth = rssLast / rssFirst - 1;
  const summary = {
    seconds: round(end.t),
    warmupSeconds: warmupS,
    requests,
    errors,
    errorRate: requests ? errors / requests : 0,
    requestsAfterWarmup: after.length ? end.requests - atWarmup.requests : 0,
    p50Ms: round(percentile(latencies, 0.5), 2),
    p99Ms: round(percentile(latencies, 0.99), 2),
    rssAtWarmupEndMb: round(atWarmup.rssMb),
    rssEndMb: round(end.rssMb),
    rssMaxMb: round(Math.max(...samples.map((s) => s.rssMb))),
    rssMaxAfterWarmupMb: round(Math.max(...after.map((s) => s.rssMb))),
    growthWindowSeconds: round(window),
    rssFirstWindowMedianMb: round(rssFirst),
    rssLastWindowMedianMb: round(rssLast),
    rssGrowthPercent: round(100 * growth, 2),
    rssEndVsWarmupEndPercent: round(100 * (end.rssMb / atWarmup.rssMb - 1), 2),
    heapUsedFirstWindowMinMb: round(heap(firstWindow)),
    heapUsedLastWindowMinMb: round(heap(lastWindow)),
    heapGrowthPercent: round(100 * (heap(lastWindow) / heap(firstWindow) - 1), 2),
    activeHandlesAtWarmupEnd: atWarmup.activeHandles,
    activeHandlesEnd: end.activeHandles,
    serviceExitCode: exitCode,
    serviceLogLines: logLines.length,
  };
  const passed = errors === 0 && growth < GROWTH_LIMIT;
  const kindRows = ([...PACED, 'metrics', 'ab-report'] as Kind[])
    .filter((k) => stats.has(k))
    .map((k) => {
      const s = stats.get(k)!;
      const sorted = s.latencies.sort((a, b) => a - b);
      return {
        kind: k,
        requests: s.requests,
        errors: s.errors,
        errorCodes: s.errorCodes,
        p50Ms: round(percentile(sorted, 0.5), 2),
        p99Ms: round(percentile(sorted, 0.99), 2),
      };
    });

  mkdirSync(opts.out, { recursive: true });
  const result = {
    date: new Date().toISOString(),
    command: `node dist/bench/soak.js ${process.argv.slice(2).join(' ')}`.trim(),
    options: opts,
    criteria: {
      errors: 0,
      rssGrowthPercentBelow: 100 * GROWTH_LIMIT,
      growth: 'median VmRSS of the first window after warm-up vs the last window',
    },
    passed,
    summary,
    kinds: kindRows,
    firstErrors,
    environment: { node: process.version, cpus: os.cpus().length, backgroundJobs: background, note: opts.note },
    service: { routing, logTail: logLines.slice(-20) },
    samples,
  };
  writeFileSync(path.join(opts.out, 'soak.json'), `${JSON.stringify(result, null, 1)}\n`);
  const f = (x: number | null | undefined, unit = '') => (x === null || x === undefined ? '-' : `${x.toLocaleString('en-US')}${unit}`);
  const md = [
    `# Soak test, ${result.date.slice(0, 10)}`,
    '',
    `\`${result.command}\`: ${opts.rate} req/s for ${opts.warmupMinutes} min warm-up + ${opts.minutes} min, both models in a 50/50 A/B split with 5% shadowed` +
      (background.length ? `, with the training job running on the same ${os.cpus().length} cores.` : '.') +
      (opts.note ? ` ${opts.note}` : ''),
    '',
    `| requests | errors | p50 ms | p99 ms | RSS warm-up end | RSS end | RSS max | growth (first vs last ${summary.growthWindowSeconds} s) | end vs warm-up end | heap used (lowest) | result |`,
    '|---|---|---|---|---|---|---|---|---|---|---|',
    `| ${f(requests)} | ${errors} (${(100 * summary.errorRate).toFixed(3)}%) | ${f(summary.p50Ms)} | ${f(summary.p99Ms)} | ${f(summary.rssAtWarmupEndMb, ' MB')} | ${f(summary.rssEndMb, ' MB')} | ${f(summary.rssMaxMb, ' MB')} | ${f(summary.rssGrowthPercent, '%')} | ${f(summary.rssEndVsWarmupEndPercent, '%')} | ${f(summary.heapUsedFirstWindowMinMb)} → ${f(summary.heapUsedLastWindowMinMb, ' MB')} | ${passed ? 'pass' : 'FAIL'} |`,
    '',
    '| kind | requests | errors | p50 ms | p99 ms |',
    '|---|---|---|---|---|',
    ...kindRows.map(
      (k) =>
        `| ${k.kind} | ${f(k.requests)} | ${k.errors}${k.errors ? ` ${JSON.stringify(k.errorCodes)}` : ''} | ${f(k.p50Ms)} | ${f(k.p99Ms)} |`,
    ),
    '',
    "Latency is from the moment a request was due (open loop), after the warm-up; metrics and ab-report are the sampler's own calls.",
    '',
  ].join('\n');
  writeFileSync(path.join(opts.out, 'soak.md'), md);
  process.stdout.write(
    `${md}\n${JSON.stringify(summary, null, 2)}\n${passed ? 'PASS' : 'FAIL'}: ${errors} errors, RSS growth ${summary.rssGrowthPercent}% (limit ${100 * GROWTH_LIMIT}%)\n`,
  );
  return passed ? 0 : 1;
}

main(parseArgs(process.argv.slice(2))).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`soak: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
