/**
 * The gRPC transport over a real socket with real @grpc/grpc-js clients:
 * every ProductClassifier RPC, error codes, deadlines, a long stream with a
 * slow reader, health on shutdown, reflection. Waits are on events (the
 * server blocking on a slow reader, a health status heard, an answer
 * received), never on a clock.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { call, clients, type Clients, failure, listServices } from '../grpc-clients';
import { BASELINE_VERSION, fixtureBytes, fixtureImages, startService } from '../helpers';
import { catalogPhoto } from '../images';
import { spyOnServerStream } from '../support/grpc-stream-spy';
import { nextEvent, withTimeout } from '../support/wait';

const fixtures = fixtureImages();

describe('gRPC classifier.v1.ProductClassifier', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  let c: Clients;

  before(async () => {
    service = await startService({
      CLASSIFY_MAX_IMAGES: '16',
      MAX_IMAGE_BYTES: String(512 * 1024),
      GRPC_MAX_MESSAGE_BYTES: String(4 * 1024 * 1024),
      GRPC_STREAM_WINDOW: '8',
    });
    c = clients(service.grpcPort);
  });
  after(async () => {
    c.close();
    await service.stop();
  });

  it('Classify answers with the same fields and label as the HTTP API', async () => {
    const f = fixtures[0];
    const res = await call(c.product, 'Classify', { image: { encoded: fixtureBytes(f.file) }, top_k: 2 });
    assert.equal(res.model, 'baseline');
    assert.equal(res.version, BASELINE_VERSION);
    assert.equal(res.arm, 'default');
    assert.equal(res.top.length, 2);
    assert.equal(res.label, res.top[0].label);
    assert.equal(res.label_index, res.top[0].label_index);
    assert.ok(res.confidence > 0 && res.confidence <= 1);
    assert.ok(res.prediction_id.length > 20);
    assert.ok(res.timings.total_ms >= res.timings.inference_ms);
    const viaDataPlane = await service.dataplane.classify({ kind: 'encoded', bytes: fixtureBytes(f.file) }, {});
    assert.equal(res.label_index, viaDataPlane.labelIndex);
  });

  it('Classify takes 784 raw pixels', async () => {
    const pixels = Array.from({ length: 784 }, (_, i) => (i % 28 > 8 && i % 28 < 20 ? 200 : 0));
    const res = await call(c.product, 'Classify', { image: { pixels: { values: pixels } } });
    assert.ok(res.label.length > 0);
    const bad = await failure(call(c.product, 'Classify', { image: { pixels: { values: [1, 2, 3] } } }));
    assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
    assert.match(bad.details, /784/);
  });

  it('ClassifyBatch classifies each image and fails a bad one alone', async () => {
    const res = await call(c.product, 'ClassifyBatch', {
      images: [
        { encoded: fixtureBytes(fixtures[1].file) },
        { encoded: Buffer.from('not an image') },
        { encoded: fixtureBytes(fixtures[2].file) },
      ],
    });
    assert.equal(res.results.length, 3);
    assert.equal(res.results[0].outcome, 'classification');
    assert.equal(res.results[1].outcome, 'error');
    assert.equal(res.results[1].error.code, 'UNSUPPORTED_MEDIA_TYPE');
    assert.equal(res.results[2].outcome, 'classification');
    const tooMany = await failure(
      call(c.product, 'ClassifyBatch', { images: Array.from({ length: 17 }, () => ({ encoded: fixtureBytes(fixtures[0].file) })) }),
    );
    assert.equal(tooMany.code, grpc.status.INVALID_ARGUMENT);
    assert.match(tooMany.details, /at most 16/);
  });

  it('maps every error to its status code, with the service code in x-error-code', async () => {
    const noImage = await failure(call(c.product, 'Classify', {}));
    assert.deepEqual([noImage.code, noImage.errorCode], [grpc.status.INVALID_ARGUMENT, 'INVALID_ARGUMENT']);
    const unknownModel = await failure(call(c.product, 'Classify', { image: { encoded: fixtureBytes(fixtures[0].file) }, model: 'nope' }));
    assert.deepEqual([unknownModel.code, unknownModel.errorCode], [grpc.status.NOT_FOUND, 'NOT_FOUND']);
    const badVersion = await failure(
      call(c.product, 'Classify', { image: { encoded: fixtureBytes(fixtures[0].file) }, model: 'baseline', version: '99' }),
    );
    assert.equal(badVersion.code, grpc.status.NOT_FOUND);
    const notImage = await failure(call(c.product, 'Classify', { image: { encoded: Buffer.from('a product description, not an image') } }));
    assert.deepEqual([notImage.code, notImage.errorCode], [grpc.status.INVALID_ARGUMENT, 'UNSUPPORTED_MEDIA_TYPE']);
    const brokenGif = await failure(call(c.product, 'Classify', { image: { encoded: Buffer.from('GIF89a but not really') } }));
    assert.deepEqual(
      [brokenGif.code, brokenGif.errorCode, brokenGif.details],
      [grpc.status.INVALID_ARGUMENT, 'INVALID_ARGUMENT', 'the GIF file is corrupt or truncated: its header cannot be read'],
    );
    // Noise does not compress: a 600x600 colour PNG is over the 512 KiB image limit.
    const big = await sharp({
      create: { width: 600, height: 600, channels: 3, background: '#fff', noise: { type: 'gaussian', mean: 128, sigma: 60 } },
    })
      .png()
      .toBuffer();
    assert.ok(big.length > 512 * 1024);
    const tooBig = await failure(call(c.product, 'Classify', { image: { encoded: big } }));
    assert.deepEqual([tooBig.code, tooBig.errorCode], [grpc.status.RESOURCE_EXHAUSTED, 'PAYLOAD_TOO_LARGE']);
    const overMessage = await failure(call(c.product, 'Classify', { image: { encoded: Buffer.alloc(5 * 1024 * 1024, 1) } }));
    assert.equal(overMessage.code, grpc.status.RESOURCE_EXHAUSTED); // grpc-js refuses the message itself
    const badKey = await failure(
      call(c.product, 'Classify', { image: { encoded: fixtureBytes(fixtures[0].file) }, routing_key: 'k'.repeat(300) }),
    );
    assert.equal(badKey.code, grpc.status.INVALID_ARGUMENT);
  });

  it('honours deadlines', async () => {
    const photo = await catalogPhoto('jpeg', 300, 300);
    const ok = await call(c.product, 'Classify', { image: { encoded: photo } }, { deadline: Date.now() + 30_000 });
    assert.ok(ok.label);
    // A service whose clock reads an hour later sees every deadline as passed: no work, DEADLINE_EXCEEDED.
    const ahead = await startService({}, { wallClock: () => Date.now() + 3_600_000 });
    const late = clients(ahead.grpcPort);
    try {
      const f = await failure(call(late.product, 'Classify', { image: { encoded: photo } }, { deadline: Date.now() + 30_000 }));
      assert.equal(f.code, grpc.status.DEADLINE_EXCEEDED);
      assert.equal(f.errorCode, 'DEADLINE_EXCEEDED');
      assert.ok((await call(late.product, 'Classify', { image: { encoded: photo } })).label, 'a call without a deadline is served');
    } finally {
      late.close();
      await ahead.stop();
    }
  });

  it('SendFeedback verifies the receipt, counts once, and refuses tampered ids', async () => {
    const f = fixtures[3];
    const res = await call(c.product, 'Classify', { image: { encoded: fixtureBytes(f.file) } });
    const first = await call(c.product, 'SendFeedback', { prediction_id: res.prediction_id, label: f.label });
    assert.deepEqual(
      [first.accepted, first.correct, first.model, first.version, first.arm],
      [true, res.label_index === f.labelIndex, 'baseline', BASELINE_VERSION, 'default'],
    );
    const again = await call(c.product, 'SendFeedback', { prediction_id: res.prediction_id, label_index: f.labelIndex });
    assert.equal(again.accepted, false);
    const [payload, sig] = res.prediction_id.split('.');
    const forged = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), c: (res.label_index + 1) % 10 }),
    ).toString('base64url');
    const tampered = await failure(call(c.product, 'SendFeedback', { prediction_id: `${forged}.${sig}`, label_index: 0 }));
    assert.equal(tampered.code, grpc.status.PERMISSION_DENIED);
    const malformed = await failure(call(c.product, 'SendFeedback', { prediction_id: 'abc', label_index: 0 }));
    assert.equal(malformed.code, grpc.status.INVALID_ARGUMENT);
    const badLabel = await failure(call(c.product, 'SendFeedback', { prediction_id: res.prediction_id, label: 'Spaceship' }));
    assert.equal(badLabel.code, grpc.status.INVALID_ARGUMENT);
    assert.match(badLabel.details, /Sneaker/);
    const noLabel = await failure(call(c.product, 'SendFeedback', { prediction_id: res.prediction_id }));
    assert.equal(noLabel.code, grpc.status.INVALID_ARGUMENT);
  });

  it('ListModels lists the loaded models', async () => {
    const res = await call(c.product, 'ListModels', {});
    const baseline = res.models.find((m: { name: string }) => m.name === 'baseline');
    assert.ok(baseline);
    assert.equal(baseline.labels.length, 10);
    assert.ok(baseline.parameters > 100_000);
    assert.equal(baseline.format, 'onnx');
  });

  it('ClassifyStream answers thousands of images in order, and reads no further than its window and a slow reader allow', async () => {
    const total = 3000;
    const window = service.config.grpcStreamWindow;
    const spy = spyOnServerStream(service.grpc.server, '/classifier.v1.ProductClassifier/ClassifyStream', window);
    try {
      const stream = c.product.ClassifyStream() as grpc.ClientDuplexStream<unknown, any>;
      const ended = new Promise<void>((resolve, reject) => {
        stream.on('end', resolve);
        stream.on('error', reject);
      });
      // Write everything at once: only flow control can hold the server back.
      for (let i = 0; i < total; i++) {
        const f = fixtures[i % fixtures.length];
        const image = i === 7 ? { encoded: Buffer.from('broken') } : { encoded: fixtureBytes(f.file) };
        stream.write({ image, tag: `item-${i}` });
      }
      stream.end();
      // The slow reader takes nothing until the server has to wait for it (a write() returns false), or
      // until the server has written every answer: how many answers the transport buffers below grpc-js
      // take first varies from run to run, and is not the service's to decide. The rule itself is proved
      // deterministically in test/unit/grpc-stream.test.ts; here it is checked at every message read.
      await withTimeout(Promise.race([spy.firstBlocked, spy.wrote(total)]), 'the server to wait for a reader that takes nothing');
      const results: any[] = [];
      stream.on('data', (r: any) => results.push(r));
      await ended;
      // Checked at every message the server read: within the window, and never while waiting for the reader.
      assert.deepEqual(spy.violations, []);
      assert.equal(spy.reads, total);
      assert.equal(results.length, total);
      results.forEach((r, i) => {
        assert.equal(Number(r.index), i);
        assert.equal(r.tag, `item-${i}`);
      });
      assert.equal(results[7].outcome, 'error');
      assert.equal(results[7].error.code, 'UNSUPPORTED_MEDIA_TYPE');
      const f0 = fixtures[0];
      assert.equal(results[0].outcome, 'classification');
      assert.equal(results[fixtures.length].classification.label_index, results[0].classification.label_index, `${f0.file} twice`);
    } finally {
      spy.restore();
    }
  });

  it('serves health and reflection', async () => {
    const h = await call(c.health, 'Check', { service: 'classifier.v1.ProductClassifier' });
    assert.equal(h.status, 'SERVING');
    const overall = await call(c.health, 'Check', { service: '' });
    assert.equal(overall.status, 'SERVING');
    const listed = await listServices(c);
    for (const name of ['classifier.v1.ProductClassifier', 'inference.GRPCInferenceService', 'grpc.health.v1.Health']) {
      assert.ok(listed.includes(name), `${name} in ${listed.join(', ')}`);
    }
    // What grpcurl asks next: the file that defines a service, as a FileDescriptorProto.
    const files = await new Promise<Buffer[]>((resolve, reject) => {
      const s = c.reflection.ServerReflectionInfo();
      s.on('data', (m: any) => {
        resolve(m.file_descriptor_response.file_descriptor_proto);
        s.end();
      });
      s.on('error', reject);
      s.write({ file_containing_symbol: 'classifier.v1.ProductClassifier' });
    });
    assert.ok(files.some((f) => f.includes('classifier.v1') && f.includes('ClassifyStream') && f.includes('prediction_id')));
  });
});

describe('gRPC shutdown', () => {
  it('turns health NOT_SERVING when draining, ends streams with UNAVAILABLE, and stops', async () => {
    const service = await startService();
    const c = clients(service.grpcPort);
    try {
      const statuses: string[] = [];
      const watch = c.health.Watch({ service: '' });
      watch.on('data', (m: { status: string }) => statuses.push(m.status));
      watch.on('error', () => undefined);
      const heard = (status: string) => nextEvent<{ status: string }>(watch, 'data', (m) => m.status === status, `health ${status}`);
      const serving = heard('SERVING');
      const notServing = heard('NOT_SERVING');
      const stream = c.product.ClassifyStream() as grpc.ClientDuplexStream<unknown, any>;
      const got: any[] = [];
      stream.on('data', (r: any) => got.push(r));
      const firstAnswer = nextEvent(stream, 'data', undefined, 'the answer sent before the shutdown');
      const streamEnd = new Promise<grpc.ServiceError | null>((resolve) => {
        stream.on('error', (e: grpc.ServiceError) => resolve(e));
        stream.on('end', () => resolve(null));
      });
      stream.write({ image: { encoded: fixtureBytes(fixtures[0].file) }, tag: 'before' });
      await firstAnswer;
      await serving;
      const stopping = service.stop();
      await notServing;
      watch.cancel();
      stream.write({ image: { encoded: fixtureBytes(fixtures[1].file) }, tag: 'after' });
      const err = await streamEnd;
      assert.equal(err?.code, grpc.status.UNAVAILABLE);
      assert.equal(got[0].tag, 'before');
      assert.deepEqual(statuses, ['SERVING', 'NOT_SERVING']);
      const outcome = await stopping;
      assert.equal(outcome.drained, true);
      assert.equal(outcome.refused, 1, 'the item sent after the signal was refused');
      assert.equal(outcome.stillInFlight, 0);
    } finally {
      c.close();
    }
  });
});
