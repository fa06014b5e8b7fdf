/**
 * The hostile-input corpus (test/support/hostile-corpus.ts) against a running
 * service, over HTTP and gRPC: each case gets its status and code with a
 * message saying what was wrong, odd-but-valid images are classified, no
 * answer shows a stack or an internal path, no log line carries a payload or
 * a secret, and the service still answers afterwards.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { createService } from '../../src/service';
import { call, clients, type Clients } from '../grpc-clients';
import { testConfig } from '../helpers';
import { type Corpus, type Expect, hostileCorpus, multipart } from '../support/hostile-corpus';

const ADMIN_TOKEN = 'hostile-test-admin-token-0123456789';
const RECEIPT_SECRET = 'hostile-test-receipt-secret-0123456789';
const LIMITS = { maxImageBytes: 1024 * 1024, maxJsonBytes: 2 * 1024 * 1024, maxBatchImages: 16, grpcMaxMessageBytes: 2 * 1024 * 1024 };
const SECURITY_HEADERS = ['x-content-type-options', 'x-frame-options', 'content-security-policy', 'cache-control', 'referrer-policy'];
/** What must never reach a client: stack frames, file paths of this machine, library names. */
const LEAK = /\bat \S+ \(|\/work\/|\/home\/|\/usr\/|\/tmp\/|node_modules|\.js:\d+|\.ts:\d+|libvips|vips_/;

interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function send(port: number, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function checkHttp(what: string, answer: HttpAnswer, expect: Expect | { status: number; code?: undefined }, oip = false): void {
  const where = `${what}: got ${answer.status} ${answer.body.slice(0, 300)}`;
  if ('classify' in expect) {
    assert.equal(answer.status, 200, where);
    const body = JSON.parse(answer.body);
    assert.equal(typeof body.label, 'string', where);
    assert.ok(body.confidence > 0 && body.confidence <= 1, where);
    return;
  }
  assert.equal(answer.status, expect.status, where);
  if (expect.code === undefined) return; // refused by node's HTTP parser before the app (431)
  const body = JSON.parse(answer.body);
  const message: string = oip ? body.error : body.error.message;
  if (!oip) {
    assert.equal(body.error.code, expect.code, where);
    assert.match(body.error.requestId, /^[0-9a-f-]{36}$/, where);
  }
  assert.match(message, expect.message, where);
  assert.doesNotMatch(message, LEAK, where);
  for (const h of SECURITY_HEADERS) assert.ok(answer.headers[h], `${what}: header ${h} missing`);
}

async function checkGrpc(what: string, p: Promise<any>, expect: Expect): Promise<void> {
  let res: any;
  try {
    res = await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    const where = `${what}: got ${e.code} ${e.details}`;
    assert.ok(!('classify' in expect), where);
    const x = expect as Exclude<Expect, { classify: true }>;
    assert.equal(e.code, x.grpc, where);
    assert.match(e.details, x.message, where);
    assert.doesNotMatch(e.details, LEAK, where);
    if (x.code) assert.equal(e.metadata.get('x-error-code')[0], x.code, where);
    return;
  }
  assert.ok('classify' in expect, `${what}: expected an error, got ${JSON.stringify(res).slice(0, 200)}`);
  assert.equal(typeof res.label, 'string', what);
}

describe('hostile input', () => {
  let service: Awaited<ReturnType<typeof createService>>;
  let port: number;
  let grpcClients: Clients;
  let corpus: Corpus;
  const logLines: string[] = [];

  before(async () => {
    const logStream = new Writable({
      write(chunk, _enc, cb) {
        logLines.push(String(chunk));
        cb();
      },
    });
    const config = testConfig({
      ADMIN_TOKEN,
      RECEIPT_SECRET,
      MAX_IMAGE_BYTES: String(LIMITS.maxImageBytes),
      MAX_JSON_BYTES: String(LIMITS.maxJsonBytes),
      MAX_BATCH_IMAGES: String(LIMITS.maxBatchImages),
      GRPC_MAX_MESSAGE_BYTES: String(LIMITS.grpcMaxMessageBytes),
      LOG_LEVEL: 'info',
    });
    service = await createService(config, pino({ level: 'info' }, logStream));
    const ports = await service.start();
    port = ports.httpPort;
    grpcClients = clients(ports.grpcPort);
    corpus = await hostileCorpus({ ...LIMITS, receiptSecret: RECEIPT_SECRET, feedbackMaxAgeHours: config.feedbackMaxAgeHours });
  });

  after(async () => {
    grpcClients?.close();
    await service?.stop();
  });

  it('answers every file case the same way as multipart, base64 JSON and gRPC bytes', async () => {
    for (const f of corpus.files) {
      const form = multipart([{ field: 'image', file: f.file, data: f.bytes }]);
      checkHttp(`${f.name} (multipart)`, await send(port, 'POST', '/v1/classify', { 'content-type': form.type }, form.body), f.expect);
      const asJson = Buffer.from(JSON.stringify({ image: f.bytes.toString('base64') }));
      checkHttp(`${f.name} (base64 JSON)`, await send(port, 'POST', '/v1/classify', { 'content-type': 'application/json' }, asJson), f.expect);
      await checkGrpc(`${f.name} (gRPC)`, call(grpcClients.product, 'Classify', { image: { encoded: f.bytes } }), f.expect);
    }
  });

  it('answers every pixel-array case over JSON and gRPC', async () => {
    for (const p of corpus.pixels) {
      if (p.json !== undefined) {
        checkHttp(`${p.name} (JSON)`, await send(port, 'POST', '/v1/classify', { 'content-type': 'application/json' }, Buffer.from(`{"pixels":${p.json}}`)), p.expect);
      }
      if (p.grpc !== undefined) await checkGrpc(`${p.name} (gRPC)`, call(grpcClients.product, 'Classify', { image: { pixels: { values: p.grpc } } }), p.expect);
    }
  });

  it('answers every HTTP-only case', async () => {
    for (const h of corpus.http) checkHttp(h.name, await send(port, h.method, h.path, h.headers, h.body), h.expect, h.oip);
  });

  it('answers every gRPC-only case', async () => {
    for (const g of corpus.grpc) await checkGrpc(g.name, call(grpcClients.product, g.method, g.request), g.expect);
  });

  it('refuses bad model, version and option values on both transports', async () => {
    const pixels = new Array(784).fill(0);
    for (const o of corpus.options) {
      const { model, version, topK, routingKey } = o.options;
      checkHttp(`${o.name} (HTTP)`, await send(port, 'POST', '/v1/classify', { 'content-type': 'application/json' }, Buffer.from(JSON.stringify({ pixels, model, version, topK, routingKey }))), o.expect);
      const req = { image: { pixels: { values: pixels } }, model: model ?? '', version: version ?? '', top_k: topK ?? 0, routing_key: routingKey ?? '' };
      await checkGrpc(`${o.name} (gRPC)`, call(grpcClients.product, 'Classify', req), o.expect);
    }
  });

  it('refuses bad feedback on both transports', async () => {
    for (const f of corpus.feedback) {
      const label = f.label;
      checkHttp(`${f.name} (HTTP)`, await send(port, 'POST', '/v1/feedback', { 'content-type': 'application/json' }, Buffer.from(JSON.stringify({ predictionId: f.predictionId, label }))), f.expect);
      const truth = typeof label === 'number' ? { label_index: label } : typeof label === 'string' ? { label } : {};
      // Feedback answers carry no label; an error is what is checked here.
      await checkGrpc(`${f.name} (gRPC)`, call(grpcClients.product, 'SendFeedback', { prediction_id: f.predictionId, ...truth }), f.expect);
    }
  });

  it('keeps answering, and logs neither payloads nor secrets', async () => {
    const ok = await send(port, 'POST', '/v1/classify', { 'content-type': 'application/json' }, Buffer.from(JSON.stringify({ pixels: new Array(784).fill(0) })));
    assert.equal(ok.status, 200);
    assert.equal((await send(port, 'GET', '/readyz', {})).status, 200);
    const log = logLines.join('');
    assert.ok(logLines.length > 100, 'one line per request');
    assert.ok(!log.includes(ADMIN_TOKEN) && !log.includes(RECEIPT_SECRET), 'no secret in the logs');
    assert.ok(!log.includes('iVBORw0KGgo'), 'no base64 image in the logs');
    assert.ok(!/\[(0,){20}/.test(log), 'no pixel array in the logs');
    assert.ok(!log.includes('not-the-admin-token'), 'no presented token in the logs');
  });
});
