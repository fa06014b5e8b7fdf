/**
 * Sends the hostile-input corpus to a running service over HTTP and gRPC and
 * asserts each answer: status and code, a message saying what was wrong,
 * security headers, and nothing internal (stack frames, paths) in it.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type * as grpc from '@grpc/grpc-js';
import { call, type Clients } from '../grpc-clients';
import { type Corpus, type Expect, multipart } from './hostile-corpus';

const SECURITY_HEADERS = ['x-content-type-options', 'x-frame-options', 'content-security-policy', 'cache-control', 'referrer-policy'];
/** What must never reach a client: stack frames, file paths of this machine, library names. */
const LEAK = /\bat \S+ \(|\/work\/|\/home\/|\/usr\/|\/tmp\/|node_modules|\.js:\d+|\.ts:\d+|libvips|vips_/;

interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function send(port: number, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export function checkHttp(what: string, answer: HttpAnswer, expect: Expect | { status: number; code?: undefined }, oip = false): void {
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

export async function checkGrpc(what: string, p: Promise<any>, expect: Expect): Promise<void> {
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

export interface Target {
  port: number;
  grpc: Clients;
}

export type Section = keyof Corpus;

/** Every case of the given sections, one after another; the first wrong answer fails. */
export async function sendCorpus(
  corpus: Corpus,
  target: Target,
  sections: Section[] = ['files', 'pixels', 'http', 'grpc', 'options', 'feedback'],
): Promise<number> {
  const { port } = target;
  const product = target.grpc.product;
  const jsonHeaders = { 'content-type': 'application/json' };
  const asJson = (v: unknown) => Buffer.from(JSON.stringify(v));
  let sent = 0;
  for (const section of sections) {
    if (section === 'files') {
      for (const f of corpus.files) {
        const form = multipart([{ field: 'image', file: f.file, data: f.bytes }]);
        checkHttp(`${f.name} (multipart)`, await send(port, 'POST', '/v1/classify', { 'content-type': form.type }, form.body), f.expect);
        checkHttp(
          `${f.name} (base64 JSON)`,
          await send(port, 'POST', '/v1/classify', jsonHeaders, asJson({ image: f.bytes.toString('base64') })),
          f.expect,
        );
        await checkGrpc(`${f.name} (gRPC)`, call(product, 'Classify', { image: { encoded: f.bytes } }), f.expect);
        sent += 3;
      }
    } else if (section === 'pixels') {
      for (const p of corpus.pixels) {
        if (p.json !== undefined) {
          checkHttp(
            `${p.name} (JSON)`,
            await send(port, 'POST', '/v1/classify', jsonHeaders, Buffer.from(`{"pixels":${p.json}}`)),
            p.expect,
          );
          sent++;
        }
        if (p.grpc !== undefined) {
          await checkGrpc(`${p.name} (gRPC)`, call(product, 'Classify', { image: { pixels: { values: p.grpc } } }), p.expect);
          sent++;
        }
      }
    } else if (section === 'http') {
      for (const h of corpus.http) {
        checkHttp(h.name, await send(port, h.method, h.path, h.headers, h.body), h.expect, h.oip);
        sent++;
      }
    } else if (section === 'grpc') {
      for (const g of corpus.grpc) {
        await checkGrpc(g.name, call(product, g.method, g.request), g.expect);
        sent++;
      }
    } else if (section === 'options') {
      const pixels = new Array(784).fill(0);
      for (const o of corpus.options) {
        const { model, version, topK, routingKey } = o.options;
        checkHttp(
          `${o.name} (HTTP)`,
          await send(port, 'POST', '/v1/classify', jsonHeaders, asJson({ pixels, model, version, topK, routingKey })),
          o.expect,
        );
        const req = {
          image: { pixels: { values: pixels } },
          model: model ?? '',
          version: version ?? '',
          top_k: topK ?? 0,
          routing_key: routingKey ?? '',
        };
        await checkGrpc(`${o.name} (gRPC)`, call(product, 'Classify', req), o.expect);
        sent += 2;
      }
    } else {
      for (const f of corpus.feedback) {
        checkHttp(
          `${f.name} (HTTP)`,
          await send(port, 'POST', '/v1/feedback', jsonHeaders, asJson({ predictionId: f.predictionId, label: f.label })),
          f.expect,
        );
        const truth = typeof f.label === 'number' ? { label_index: f.label } : typeof f.label === 'string' ? { label: f.label } : {};
        await checkGrpc(`${f.name} (gRPC)`, call(product, 'SendFeedback', { prediction_id: f.predictionId, ...truth }), f.expect);
        sent += 2;
      }
    }
  }
  return sent;
}
