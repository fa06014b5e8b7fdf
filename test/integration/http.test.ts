/** Every HTTP route, input form and error path, over a real socket (supertest). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { catalogPhoto, pngDeclaring } from '../images';
import { AbRouter, parseRoutingConfig } from '../../src/routing/router';
import { BASELINE_VERSION, fixtureBytes, fixtureImages, startService } from '../helpers';

const TOKEN = 'test-admin-token-0123456789';

describe('HTTP API', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  let api: ReturnType<typeof request>;
  const fixtures = fixtureImages();
  const png = fixtureBytes(fixtures[0].file);

  before(async () => {
    service = await startService({ ADMIN_TOKEN: TOKEN, CLASSIFY_MAX_IMAGES: '16', MAX_IMAGE_BYTES: String(2 * 1024 * 1024) });
    api = request(`http://127.0.0.1:${service.port}`);
  });
  after(async () => {
    await service.stop();
  });

  const expectError = (res: request.Response, status: number, code: string) => {
    assert.equal(res.status, status, JSON.stringify(res.body));
    assert.equal(res.body.error.code, code);
    assert.equal(typeof res.body.error.message, 'string');
    assert.ok(res.body.error.message.length > 5);
    assert.ok(!/\/work\/|node_modules|at .*\.js/.test(res.body.error.message), 'no internal paths or stacks');
  };

  describe('POST /v1/classify', () => {
    it('classifies a multipart PNG upload', async () => {
      const res = await api.post('/v1/classify').attach('image', png, 'item.png').expect(200);
      assert.equal(res.body.model, 'baseline');
      assert.equal(res.body.version, BASELINE_VERSION);
      assert.ok(res.body.predictionId);
      assert.equal(res.body.top.length, 3);
      assert.equal(res.body.label, res.body.top[0].label);
      assert.ok(res.body.confidence > 0 && res.body.confidence <= 1);
      assert.ok(res.body.timings.totalMs >= res.body.timings.inferenceMs);
      assert.equal(res.headers['x-model-arm'], res.body.arm);
      assert.ok(res.headers['x-request-id']);
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
    });

    it('classifies base64 JSON (plain and data URL) the same as multipart', async () => {
      const a = await api
        .post('/v1/classify')
        .send({ image: png.toString('base64') })
        .expect(200);
      const b = await api
        .post('/v1/classify')
        .send({ image: `data:image/png;base64,${png.toString('base64')}` })
        .expect(200);
      const c = await api.post('/v1/classify').attach('image', png, 'x.png').expect(200);
      assert.equal(a.body.labelIndex, c.body.labelIndex);
      assert.equal(b.body.confidence, c.body.confidence);
    });

    it('classifies a pixel array', async () => {
      const sharp = (await import('sharp')).default;
      const { data } = await sharp(png).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
      const viaPixels = await api
        .post('/v1/classify')
        .send({ pixels: Array.from(data) })
        .expect(200);
      const viaPng = await api.post('/v1/classify').attach('image', png, 'x.png').expect(200);
      assert.equal(viaPixels.body.labelIndex, viaPng.body.labelIndex);
      assert.ok(Math.abs(viaPixels.body.confidence - viaPng.body.confidence) < 1e-6);
    });

    it('classifies a catalog photo (JPEG, 800x1000)', async () => {
      const res = await api
        .post('/v1/classify')
        .attach('image', await catalogPhoto('jpeg'), 'dress.jpg')
        .expect(200);
      assert.ok(res.body.label);
    });

    it('honours model, version and topK; echoes X-Request-Id', async () => {
      const res = await api
        .post('/v1/classify?topK=10')
        .set('X-Request-Id', 'client-req-42')
        .send({ pixels: new Array(784).fill(0), model: 'baseline', version: '1' })
        .expect(200);
      assert.equal(res.body.arm, 'explicit');
      assert.equal(res.body.top.length, 10);
      assert.equal(res.headers['x-request-id'], 'client-req-42');
      const sum = res.body.top.reduce((s: number, t: { confidence: number }) => s + t.confidence, 0);
      assert.ok(Math.abs(sum - 1) < 1e-4, 'calibrated probabilities sum to one');
    });

    it('refuses bad input with clear codes', async () => {
      expectError(await api.post('/v1/classify').send({}), 400, 'INVALID_ARGUMENT');
      expectError(await api.post('/v1/classify').send({ image: 'a', pixels: [1] }), 400, 'INVALID_ARGUMENT');
      expectError(await api.post('/v1/classify').send({ image: '!!not base64!!' }), 400, 'INVALID_ARGUMENT');
      expectError(await api.post('/v1/classify').send({ pixels: [1, 2, 3] }), 400, 'INVALID_ARGUMENT');
      expectError(await api.post('/v1/classify').send({ pixels: [...new Array(783).fill(0), 300] }), 400, 'INVALID_ARGUMENT');
      expectError(await api.post('/v1/classify').send([1, 2]), 400, 'INVALID_ARGUMENT');
      expectError(await api.post('/v1/classify').set('content-type', 'application/json').send('{"pixels": ['), 400, 'INVALID_ARGUMENT');
      expectError(await api.post('/v1/classify').set('content-type', 'text/plain').send('hello'), 415, 'UNSUPPORTED_MEDIA_TYPE');
      expectError(await api.post('/v1/classify'), 415, 'UNSUPPORTED_MEDIA_TYPE');
      expectError(await api.post('/v1/classify').field('model', 'baseline'), 400, 'INVALID_ARGUMENT');
      expectError(await api.post('/v1/classify').attach('photo', png, 'x.png'), 400, 'INVALID_ARGUMENT');
      expectError(await api.post('/v1/classify').attach('image', Buffer.from('%PDF-1.4'), 'x.pdf'), 415, 'UNSUPPORTED_MEDIA_TYPE');
      expectError(await api.post('/v1/classify').attach('image', pngDeclaring(40_000, 40_000), 'bomb.png'), 413, 'PAYLOAD_TOO_LARGE');
      expectError(await api.post('/v1/classify').attach('image', Buffer.alloc(3 * 1024 * 1024, 1), 'big.png'), 413, 'PAYLOAD_TOO_LARGE');
      expectError(await api.post('/v1/classify').send({ pixels: new Array(784).fill(0), model: 'nope' }), 404, 'NOT_FOUND');
      expectError(
        await api.post('/v1/classify').send({ pixels: new Array(784).fill(0), model: 'baseline', version: '9' }),
        404,
        'NOT_FOUND',
      );
      expectError(await api.post('/v1/classify').send({ pixels: new Array(784).fill(0), model: '../../etc' }), 400, 'INVALID_ARGUMENT');
      expectError(await api.post('/v1/classify').send({ pixels: new Array(784).fill(0), version: '1' }), 400, 'INVALID_ARGUMENT');
    });
  });

  describe('POST /v1/classify/batch', () => {
    it('classifies many multipart images in order', async () => {
      let req = api.post('/v1/classify/batch');
      for (const f of fixtures.slice(0, 8)) req = req.attach('images', fixtureBytes(f.file), f.file);
      const res = await req.expect(200);
      assert.equal(res.body.results.length, 8);
      const singles = await Promise.all(
        fixtures.slice(0, 8).map((f) => api.post('/v1/classify').attach('image', fixtureBytes(f.file), f.file)),
      );
      res.body.results.forEach((r: { labelIndex: number }, i: number) => assert.equal(r.labelIndex, singles[i].body.labelIndex));
    });

    it('classifies a JSON batch, reporting a bad item without failing the others', async () => {
      const res = await api
        .post('/v1/classify/batch')
        .send({ images: [{ image: png.toString('base64') }, { pixels: [1, 2] }, { pixels: new Array(784).fill(0) }] })
        .expect(200);
      assert.equal(res.body.results.length, 3);
      assert.ok(res.body.results[0].label);
      assert.equal(res.body.results[1].error.code, 'INVALID_ARGUMENT');
      assert.ok(res.body.results[2].label);
    });

    it('refuses empty and oversized batches', async () => {
      expectError(await api.post('/v1/classify/batch').send({ images: [] }), 400, 'INVALID_ARGUMENT');
      expectError(await api.post('/v1/classify/batch').send({ images: 'x' }), 400, 'INVALID_ARGUMENT');
      expectError(
        await api.post('/v1/classify/batch').send({ images: new Array(17).fill({ pixels: new Array(784).fill(0) }) }),
        400,
        'INVALID_ARGUMENT',
      );
      let req = api.post('/v1/classify/batch');
      for (let i = 0; i < 17; i++) req = req.attach('images', png, `${i}.png`);
      expectError(await req, 400, 'INVALID_ARGUMENT');
    });
  });

  describe('models, health, readiness, admin', () => {
    it('lists models with runtime and evaluation', async () => {
      const res = await api.get('/v1/models').expect(200);
      const m = res.body.models.find((x: { name: string }) => x.name === 'baseline');
      assert.equal(m.version, '1');
      assert.match(m.backend, /onnxruntime-node/);
      assert.equal(m.labels.length, 10);
      assert.ok(m.parameters > 0);
    });

    it('answers health and readiness', async () => {
      assert.deepEqual((await api.get('/healthz').expect(200)).body, { status: 'ok' });
      assert.equal((await api.get('/readyz').expect(200)).body.ready, true);
    });

    it('answers unknown routes with a JSON 404', async () => {
      expectError(await api.get('/v1/nothing'), 404, 'NOT_FOUND');
    });

    it('guards admin routes with the bearer token', async () => {
      expectError(await api.post('/v1/admin/models/reload'), 401, 'UNAUTHENTICATED');
      expectError(await api.post('/v1/admin/models/reload').set('Authorization', 'Bearer wrong-token-value-xx'), 401, 'UNAUTHENTICATED');
      const ok = await api.post('/v1/admin/models/reload').set('Authorization', `Bearer ${TOKEN}`).expect(200);
      assert.equal(ok.body.ok, true);
      assert.ok(ok.body.unchanged.includes('baseline/1'));
    });

    it('sets the A/B config on this instance through the admin route', async () => {
      const auth = { Authorization: `Bearer ${TOKEN}` };
      expectError(await api.put('/v1/admin/routing').send({}), 401, 'UNAUTHENTICATED');
      assert.equal((await api.get('/v1/admin/routing').set(auth).expect(200)).body.source, 'none');
      const cfg = {
        experiment: 'http-test',
        arms: [
          { name: 'control', model: 'baseline', weight: 1 },
          { name: 'candidate', model: 'baseline', weight: 1 },
        ],
      };
      const bad = await api
        .put('/v1/admin/routing')
        .set(auth)
        .send({ ...cfg, arms: [{ name: 'c', model: 'missing', weight: 1 }] });
      expectError(bad, 400, 'INVALID_ARGUMENT');
      assert.match(bad.body.error.message, /"missing" is not loaded/);
      const applied = await api.put('/v1/admin/routing').set(auth).send(cfg).expect(200);
      assert.equal(applied.body.source, 'admin');
      assert.deepEqual(
        applied.body.config.arms.map((a: { weight: number }) => a.weight),
        [0.5, 0.5],
      );
      const router = new AbRouter(parseRoutingConfig(cfg));
      for (const key of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) {
        const res = await api.post('/v1/classify').set('X-Routing-Key', key).attach('image', png, 'item.png').expect(200);
        assert.equal(res.headers['x-model-arm'], router.select({ routingKey: key }).arm, key);
        assert.equal(res.body.arm, res.headers['x-model-arm']);
      }
      const explicit = await api
        .post('/v1/classify')
        .set('X-Routing-Key', 'alice')
        .field('model', 'baseline')
        .attach('image', png, 'item.png')
        .expect(200);
      assert.equal(explicit.body.arm, 'explicit');
    });
  });
});

describe('HTTP API without an admin token', () => {
  it('has no admin routes', async () => {
    const service = await startService();
    try {
      const res = await request(`http://127.0.0.1:${service.port}`)
        .post('/v1/admin/models/reload')
        .set('Authorization', 'Bearer anything-at-all-123');
      assert.equal(res.status, 404);
      assert.equal(res.body.error.code, 'NOT_FOUND');
    } finally {
      await service.stop();
    }
  });
});

describe('draining', () => {
  it('turns readiness false, refuses new requests cleanly and finishes the admitted ones', async () => {
    const service = await startService();
    const api = request(`http://127.0.0.1:${service.port}`);
    const arrived = new Promise((resolve) => service.httpServer.once('request', resolve));
    const inflight = api.post('/v1/classify').attach('image', await catalogPhoto('jpeg', 1600, 2000), 'big.jpg');
    const pending = inflight.then((r) => r);
    await arrived; // the request is in flight (headers received), not merely connecting
    const stopped = service.stop();
    assert.equal(service.dataplane.readiness().ready, false);
    const refused = await api.post('/v1/classify').send({ pixels: new Array(784).fill(0) });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'UNAVAILABLE');
    assert.match(refused.body.error.message, /draining/);
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(refused.headers.connection, 'close');
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(res.headers.connection, 'close', 'answers given while draining close their connection');
    const outcome = await stopped;
    assert.deepEqual(
      {
        drained: outcome.drained,
        inFlightAtDrain: outcome.inFlightAtDrain,
        finished: outcome.finished,
        refused: outcome.refused,
        stillInFlight: outcome.stillInFlight,
      },
      { drained: true, inFlightAtDrain: 1, finished: 1, refused: 1, stillInFlight: 0 },
    );
  });
});
