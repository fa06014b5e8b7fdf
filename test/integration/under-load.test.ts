/**
 * Deploy-time changes while traffic runs: model versions added, replaced in
 * place and refused (checksum), and A/B configs switched by the admin route
 * and by the routing file. Closed-loop HTTP and gRPC clients run throughout;
 * not one of their requests may fail, and each answer must come wholly from
 * one configuration.
 *
 * Nothing here waits for a time: each phase waits until every client has
 * had requests answered in it (Traffic.everyWorkerSince / when), and the
 * routing file's effects are awaited through the lines the service logs
 * when it applies or refuses a config.
 */
import assert from 'node:assert/strict';
import { cp, readFile, rename, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createService, type Service } from '../../src/service';
import { clients, type Clients } from '../grpc-clients';
import { BASELINE_VERSION, tempModelDir, testConfig } from '../helpers';
import { describeFailures, grpcWorker, httpWorker, Traffic } from '../support/traffic';
import { LogCapture } from '../support/wait';

const TOKEN = 'under-load-admin-token-0123456789';
const pixels = Array.from({ length: 784 }, (_, i) => (i * 7) % 256);
/** Traffic still running when a test fails is stopped by the suite's after(). */
const traffics: Traffic[] = [];

async function copyVersion(dir: string, model: string, from: string, to: string): Promise<string> {
  const target = path.join(dir, model, to);
  await cp(path.join(dir, model, from), target, { recursive: true });
  await editManifest(target, (m) => {
    m.version = to;
  });
  return target;
}

async function editManifest(versionDir: string, edit: (m: Record<string, unknown>) => void): Promise<void> {
  const file = path.join(versionDir, 'manifest.json');
  const m = JSON.parse(await readFile(file, 'utf8'));
  edit(m);
  await writeFile(file, JSON.stringify(m, null, 2));
}

function admin(port: number, method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: route,
        headers: {
          authorization: `Bearer ${TOKEN}`,
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** A service under test with its clients; close() stops any traffic left running, then the service. */
interface Running {
  service: Service;
  port: number;
  metricsPort: number;
  grpc: Clients;
  agent: http.Agent;
  close(): Promise<void>;
}

async function serve(env: Record<string, string>, log: pino.Logger): Promise<Running> {
  const service = await createService(testConfig(env), log);
  const ports = await service.start();
  const grpc = clients(ports.grpcPort);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  return {
    service,
    port: ports.httpPort,
    metricsPort: ports.metricsPort,
    grpc,
    agent,
    async close() {
      await Promise.all(traffics.map((t) => t.stop()));
      grpc.close();
      agent.destroy();
      await service.stop();
    },
  };
}

describe('model versions changed under load', () => {
  let dir: string;
  let s: Running;
  // Errors only: the request lines (one per call at info) are dropped as they come.
  const log = new LogCapture((l) => l.level >= 50);

  before(async () => {
    dir = await tempModelDir();
    s = await serve({ MODEL_DIR: dir, ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'info' }, pino({ level: 'info' }, log.stream));
  });

  after(() => s.close());

  it('adds, replaces and refuses versions without failing a request', async () => {
    const body = { pixels, model: 'baseline' };
    const workers = [
      ...Array.from({ length: 6 }, () => httpWorker(s.port, s.agent, '/v1/classify', body)),
      httpWorker(s.port, s.agent, '/v1/classify/batch', { images: [{ pixels }, { pixels }, { pixels }], model: 'baseline' }),
      ...Array.from({ length: 3 }, () =>
        grpcWorker(s.grpc.product, 'Classify', { image: { pixels: { values: pixels } }, model: 'baseline' }),
      ),
    ];
    const traffic = new Traffic(workers);
    traffics.push(traffic);
    // Each phase lasts until every client has sent a request in it and had it answered.
    const everyClientServed = () => traffic.everyWorkerSince(traffic.mark());
    await everyClientServed();

    // A new version (the next after the shipped ones): loaded first, then swapped in; requests without a version move to it.
    const shipped = BASELINE_VERSION;
    const next = String(Number(shipped) + 1);
    const corrupt = String(Number(shipped) + 2);
    const beforeAdd = performance.now();
    await copyVersion(dir, 'baseline', shipped, next);
    const added = await admin(s.port, 'POST', '/v1/admin/models/reload');
    assert.deepEqual(added.body.loaded, [`baseline/${next}`]);
    const afterAdd = performance.now();
    await everyClientServed();

    // A corrupt new version: refused by its checksum; the version before it keeps serving.
    const bad = await copyVersion(dir, 'baseline', shipped, corrupt);
    const onnx = path.join(bad, 'model.onnx');
    const bytes = await readFile(onnx);
    bytes[bytes.length >> 1] ^= 0xff;
    await writeFile(onnx, bytes);
    const refused = await admin(s.port, 'POST', '/v1/admin/models/reload');
    assert.equal(refused.body.ok, false);
    assert.deepEqual(
      refused.body.failed.map((f: { name: string; version: string }) => `${f.name}/${f.version}`),
      [`baseline/${corrupt}`],
    );
    assert.match(refused.body.failed[0].error, /model\.onnx does not match its sha256/);
    await everyClientServed();

    // The new version replaced in place (a new manifest): the old copy retires once its requests are done.
    await editManifest(path.join(dir, 'baseline', next), (m) => {
      m.description = `${m.description} (redeployed)`;
    });
    const replaced = await admin(s.port, 'POST', '/v1/admin/models/reload');
    assert.deepEqual(replaced.body.loaded, [`baseline/${next}`]);
    await everyClientServed();

    // Replaced in place by a broken copy: refused, the running copy stays.
    await editManifest(path.join(dir, 'baseline', next), (m) => {
      (m.files as Record<string, string>)['model.onnx'] = '0'.repeat(64);
    });
    const brokenInPlace = await admin(s.port, 'POST', '/v1/admin/models/reload');
    assert.deepEqual(brokenInPlace.body.failed.map((f: { name: string; version: string }) => `${f.name}/${f.version}`).sort(), [
      `baseline/${next}`,
      `baseline/${corrupt}`,
    ]);
    await everyClientServed();

    const outcomes = await traffic.stop();
    assert.equal(outcomes.length, traffic.sent, 'every request sent was answered');
    assert.equal(outcomes.filter((o) => !o.ok).length, 0, describeFailures(outcomes));
    const clients = (os: typeof outcomes) => new Set(os.map((o) => o.worker)).size;
    const early = outcomes.filter((o) => o.answeredAt < beforeAdd);
    assert.equal(clients(early), workers.length, 'every client was answered before the first reload');
    assert.deepEqual([...new Set(early.map((o) => o.version))], [shipped], 'by the shipped version');
    const late = traffic.sentAfter(afterAdd);
    assert.equal(clients(late), workers.length, 'every client sent requests after the reload');
    assert.deepEqual([...new Set(late.map((o) => o.version))], [next], 'after the reload every answer comes from the new version');

    const metrics = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
    const loadMetric = (family: string, version: string, value: number) =>
      new RegExp(`^${family}\\{model="baseline",version="${version}"\\} ${value}$`, 'm');
    assert.match(metrics, loadMetric('classifier_model_load_failures_total', corrupt, 3)); // refused at each of the 3 reloads after it appeared
    assert.match(metrics, loadMetric('classifier_model_load_failures_total', next, 1));
    // The state the ClassifierModelRefused alert reads: both refused at the last reload.
    assert.match(metrics, loadMetric('classifier_model_load_failed', next, 1));
    assert.match(metrics, loadMetric('classifier_model_load_failed', corrupt, 1));
    const failures = log.lines.filter((l) => l.model === 'baseline');
    assert.deepEqual(failures.map((l) => `${l.version}: ${l.msg}`).sort(), [
      `${next}: model reload failed; previous copy keeps serving`,
      `${corrupt}: model load failed`,
      `${corrupt}: model load failed`,
      `${corrupt}: model load failed`,
    ]);
  });
});

describe('A/B config changed under load', () => {
  const file = path.join(os.tmpdir(), `pc-routing-under-load-${process.pid}.json`);
  const configA = {
    experiment: 'config-a',
    control: 'a-control',
    arms: [
      { name: 'a-control', model: 'baseline', weight: 1 },
      { name: 'a-candidate', model: 'baseline', weight: 1 },
    ],
  };
  const configB = {
    experiment: 'config-b',
    control: 'b-control',
    arms: [
      { name: 'b-control', model: 'dendritic', weight: 1 },
      { name: 'b-candidate', model: 'dendritic', weight: 3 },
    ],
  };
  const modelOf: Record<string, string> = {
    'a-control': 'baseline',
    'a-candidate': 'baseline',
    'b-control': 'dendritic',
    'b-candidate': 'dendritic',
  };
  let s: Running;
  // The routing source's own lines: it logs each config it applies or refuses.
  const log = new LogCapture((l) => typeof l.msg === 'string' && l.msg.startsWith('routing config'));

  before(async () => {
    await writeFile(file, JSON.stringify(configA));
    s = await serve(
      { ADMIN_TOKEN: TOKEN, ROUTING_FILE: file, ROUTING_POLL_MS: '50', LOG_LEVEL: 'info' },
      pino({ level: 'info' }, log.stream),
    );
  });

  after(() => s.close());

  it('switches whole configs atomically, by the admin route and by the file', async () => {
    const workers = [
      ...Array.from({ length: 4 }, () => httpWorker(s.port, s.agent, '/v1/classify', { pixels })),
      ...Array.from({ length: 2 }, () =>
        httpWorker(s.port, s.agent, '/v1/classify/batch', { images: Array.from({ length: 8 }, () => ({ pixels })) }),
      ),
      ...Array.from({ length: 2 }, () => grpcWorker(s.grpc.product, 'Classify', { image: { pixels: { values: pixels } } })),
      grpcWorker(s.grpc.product, 'ClassifyBatch', { images: Array.from({ length: 8 }, () => ({ pixels: { values: pixels } })) }),
    ];
    const traffic = new Traffic(workers);
    traffics.push(traffic);
    const everyClientServed = () => traffic.everyWorkerSince(traffic.mark());
    await everyClientServed();

    const beforePut = performance.now();
    const put = await admin(s.port, 'PUT', '/v1/admin/routing', configB);
    assert.equal(put.status, 200);
    const afterPut = performance.now();
    await everyClientServed();

    // The file: a half-written config is refused and B stays; the complete one (renamed into place) applies.
    const refusedFrom = log.mark();
    await writeFile(file, JSON.stringify(configA).slice(0, 40));
    await log.waitFor(
      (l) => l.msg === 'routing config refused; the previous one stays in force' && /not valid JSON/.test(String(l.error)),
      {
        from: refusedFrom,
        what: 'the half-written routing file refused',
      },
    );
    const status = await admin(s.port, 'GET', '/v1/admin/routing');
    assert.equal(status.body.config.experiment, 'config-b');
    assert.match(status.body.lastError.message, /not valid JSON/);
    await everyClientServed(); // served while the refused file is in place
    const beforeFile = performance.now();
    const appliedFrom = log.mark();
    await writeFile(`${file}.new`, JSON.stringify(configA));
    await rename(`${file}.new`, file);
    // Logged once the new selector is in force: anything sent after this is routed by config A.
    await log.waitFor((l) => l.msg === 'routing config applied' && l.source === 'file' && l.experiment === 'config-a', {
      from: appliedFrom,
      what: 'the renamed routing file applied',
    });
    const appliedAt = performance.now();
    await everyClientServed();

    const outcomes = await traffic.stop();
    assert.equal(outcomes.length, traffic.sent, 'every request sent was answered');
    assert.equal(outcomes.filter((o) => !o.ok).length, 0, describeFailures(outcomes));
    for (const o of outcomes) {
      const arms = o.arms ?? [o.arm!];
      const config = arms[0].split('-')[0];
      assert.ok(
        arms.every((a) => a.startsWith(`${config}-`)),
        `one answer, one config: ${arms.join(', ')}`,
      );
      assert.equal(o.model, modelOf[o.arm!], `arm ${o.arm} answered by ${o.model}`);
    }
    const configOf = (o: (typeof outcomes)[number]) => o.arm!.split('-')[0];
    const clients = (os: typeof outcomes) => new Set(os.map((o) => o.worker)).size;
    const beforeB = outcomes.filter((o) => o.answeredAt < beforePut);
    assert.equal(clients(beforeB), workers.length, 'every client was answered before the PUT');
    assert.ok(
      beforeB.every((o) => configOf(o) === 'a'),
      'config A served until the PUT',
    );
    const duringB = outcomes.filter((o) => o.sentAt > afterPut && o.answeredAt < beforeFile);
    assert.equal(clients(duringB), workers.length, 'every client was answered between the PUT and the file');
    assert.ok(
      duringB.every((o) => configOf(o) === 'b'),
      'every request sent after the PUT answered under config B, the refused file notwithstanding',
    );
    const backToA = outcomes.filter((o) => o.sentAt > appliedAt);
    assert.equal(clients(backToA), workers.length, 'every client sent requests after the file applied');
    assert.ok(
      backToA.every((o) => configOf(o) === 'a'),
      'every request sent after the file applied answered under config A',
    );
  });
});
