/**
 * Every transport runs its requests through one pipeline: a request that
 * fails is answered with the mapped status, logged once (an INTERNAL one
 * with its stack) and counted with the same labels, whichever way it came.
 * The model is made to fail inside its runtime call, so the failure is the
 * same one on every path.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import request from 'supertest';
import { call, clients, type Clients, failure } from '../grpc-clients';
import { fixtureBytes, fixtureImages, testConfig } from '../helpers';
import { createService, type Service } from '../../src/service';
import { LogCapture, withTimeout } from '../support/wait';

const png = fixtureBytes(fixtureImages()[0].file);

describe('one request pipeline for every transport', () => {
  let service: Service;
  let port: number;
  let c: Clients;
  const log = new LogCapture((l) => l.msg === 'request' || l.msg === 'request failed');

  before(async () => {
    service = await createService(testConfig({ LOG_LEVEL: 'info' }), pino({ level: 'info' }, log.stream));
    const ports = await service.start();
    port = ports.httpPort;
    c = clients(ports.grpcPort);
    // The baseline's runtime call fails from now on: the same INTERNAL error behind every transport.
    const model = service.repository.latest('baseline')!;
    model.raw = async () => {
      throw new Error('runtime exploded: secret internals');
    };
  });
  after(async () => {
    c.close();
    await service.stop();
  });

  const requests = (labels: Record<string, string>) =>
    (service.metrics.requests.get() as unknown as Promise<{ values: { labels: Record<string, string>; value: number }[] }>).then((m) =>
      m.values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((a, v) => a + v.value, 0),
    );

  /** One failing request through `send`; returns its log line after checking the count and the line. */
  async function failsTheSameWay(transport: string, endpoint: string, send: () => Promise<void>) {
    const labels = { transport, endpoint, model: '', arm: '', code: 'INTERNAL' };
    const before = await requests(labels);
    const mark = log.mark();
    await send();
    const line = await log.waitFor((l) => l.transport === transport && l.endpoint === endpoint, {
      from: mark,
      what: `the log line of ${transport} ${endpoint}`,
    });
    assert.equal(await requests(labels), before + 1, `${transport} ${endpoint} counted once as INTERNAL`);
    assert.equal(line.msg, 'request failed');
    assert.equal(line.level, 50, 'logged at error level');
    assert.equal(line.code, 'INTERNAL');
    assert.match(String(line.err), /runtime exploded/, 'the stack is in the log');
    assert.equal(typeof line.ms, 'number');
    assert.equal(log.lines.slice(mark).filter((l) => l.transport === transport && l.endpoint === endpoint).length, 1, 'one line');
    return line;
  }

  it('HTTP /v1/classify', async () => {
    const line = await failsTheSameWay('http', 'classify', async () => {
      const res = await request(`http://127.0.0.1:${port}`).post('/v1/classify').attach('image', png, 'a.png');
      assert.equal(res.status, 500);
      assert.deepEqual(Object.keys(res.body.error).sort(), ['code', 'message', 'requestId']);
      assert.equal(res.body.error.code, 'INTERNAL');
      assert.doesNotMatch(res.body.error.message, /exploded|secret/, 'internals never reach the client');
    });
    assert.equal(line.method, 'POST');
    assert.equal(line.path, '/v1/classify');
    assert.equal(line.status, 500);
  });

  it('HTTP /v1/classify/batch', async () => {
    await failsTheSameWay('http', 'classify_batch', async () => {
      const res = await request(`http://127.0.0.1:${port}`).post('/v1/classify/batch').attach('images', png, 'a.png');
      assert.equal(res.status, 500);
    });
  });

  it('Open Inference Protocol over REST (once answered 500 and logged nothing)', async () => {
    await failsTheSameWay('oip-http', 'infer', async () => {
      const res = await request(`http://127.0.0.1:${port}`)
        .post('/v2/models/baseline/infer')
        .send({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], data: [png.toString('base64')] }] });
      assert.equal(res.status, 500);
      assert.deepEqual(res.body, { error: 'internal error' });
    });
  });

  it('gRPC Classify', async () => {
    await failsTheSameWay('grpc', 'classify', async () => {
      const f = await failure(call(c.product, 'Classify', { image: { encoded: png } }));
      assert.equal(f.code, grpc.status.INTERNAL);
      assert.equal(f.errorCode, 'INTERNAL');
      assert.doesNotMatch(f.details, /exploded|secret/);
    });
  });

  it('each gRPC ClassifyStream message', async () => {
    await failsTheSameWay('grpc', 'classify_stream', async () => {
      const stream = c.product.ClassifyStream();
      const answers: any[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        stream.on('data', (m: unknown) => answers.push(m));
        stream.on('end', resolve);
        stream.on('error', reject);
      });
      stream.write({ image: { encoded: png }, tag: 'one' });
      stream.end();
      await withTimeout(ended, 'the end of the stream');
      assert.equal(answers.length, 1);
      assert.equal(answers[0].tag, 'one');
      assert.equal(answers[0].error.code, 'INTERNAL');
    });
  });

  it('Open Inference Protocol over gRPC', async () => {
    await failsTheSameWay('oip-grpc', 'infer', async () => {
      const f = await failure(
        call(c.oip, 'ModelInfer', {
          model_name: 'baseline',
          inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [png] } }],
        }),
      );
      assert.equal(f.code, grpc.status.INTERNAL);
    });
  });

  it('labels a served request with its model and arm the same way on every transport', async () => {
    // An explicit model is reported as arm "explicit", whichever protocol named it.
    const model = service.repository.latest('dendritic')!;
    const ok = { transport: '', endpoint: 'infer', model: 'dendritic', arm: 'explicit', code: 'OK' };
    const before = { rest: await requests({ ...ok, transport: 'oip-http' }), grpc: await requests({ ...ok, transport: 'oip-grpc' }) };
    const pixels = { name: 'pixels', datatype: 'UINT8', shape: [1, 28, 28] };
    await request(`http://127.0.0.1:${port}`)
      .post(`/v2/models/${model.name}/infer`)
      .send({ inputs: [{ ...pixels, data: new Array(784).fill(0) }] })
      .expect(200);
    await call(c.oip, 'ModelInfer', {
      model_name: model.name,
      inputs: [{ ...pixels, contents: { uint_contents: new Array(784).fill(0) } }],
    });
    assert.equal(await requests({ ...ok, transport: 'oip-http' }), before.rest + 1);
    assert.equal(await requests({ ...ok, transport: 'oip-grpc' }), before.grpc + 1);
  });
});
