/**
 * The browser-facing routes over a real socket: the OpenAPI document, /docs
 * and the try-it page's files (cached, with the pages' CSP), the model files
 * a browser may fetch and nothing else, TRY_IT_PAGE=off, and CORS.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { BASELINE, ROOT, startService } from '../helpers';

type Started = Awaited<ReturnType<typeof startService>>;

describe('browser-facing routes', () => {
  let service: Started;
  let api: ReturnType<typeof request>;

  before(async () => {
    service = await startService();
    api = request(`http://127.0.0.1:${service.port}`);
  });
  after(async () => {
    await service.stop();
  });

  it('serves the committed OpenAPI document at /openapi.json', async () => {
    const res = await api
      .get('/openapi.json')
      .expect(200)
      .expect('content-type', /application\/json/);
    assert.deepEqual(res.body, JSON.parse(readFileSync(path.join(ROOT, 'api', 'openapi.json'), 'utf8')));
    assert.equal(res.body.openapi, '3.1.0');
  });

  it('serves /docs and Swagger UI from node_modules with the pages policy, and caches the vendor files', async () => {
    const page = await api
      .get('/docs')
      .expect(200)
      .expect('content-type', /text\/html/);
    assert.match(page.headers['content-security-policy'], /script-src 'self'/);
    assert.doesNotMatch(page.headers['content-security-policy'], /unsafe-eval/);
    assert.equal(page.headers['cache-control'], 'no-cache');
    const bundle = await api
      .get('/docs/swagger-ui-bundle.js')
      .expect(200)
      .expect('content-type', /javascript/);
    assert.match(bundle.headers['cache-control'], /^public, max-age=\d+$/);
    assert.ok(bundle.headers['last-modified'], 'Last-Modified, so a browser revalidates instead of downloading again');
    await api.get('/docs/swagger-ui-bundle.js').set('If-Modified-Since', bundle.headers['last-modified']).expect(304);
    // No ranges: a Range header gets the whole file.
    await api.get('/docs/swagger-ui.css').set('Range', 'bytes=99999999-').expect(200);
    await api
      .get('/docs/swagger-ui.css')
      .expect(200)
      .expect('content-type', /text\/css/);
  });

  it('serves the try-it page, TF.js from node_modules, and its bundle', async () => {
    await api
      .get('/')
      .expect(200)
      .expect('content-type', /text\/html/);
    const tf = await api
      .get('/ui/vendor/tf.min.js')
      .expect(200)
      .expect('content-type', /javascript/);
    assert.equal(tf.text.length, readFileSync(require.resolve('@tensorflow/tfjs/dist/tf.min.js'), 'utf8').length);
    await api
      .get('/ui/app.js')
      .expect(200)
      .expect('content-type', /javascript/);
  });

  it('lets a browser fetch a loaded model manifest and its TF.js artifact, and nothing else of the model directory', async () => {
    const manifest = await api.get('/ui/models/baseline/1/manifest.json').expect(200);
    assert.equal(manifest.body.name, 'baseline');
    const modelJson = await api.get('/ui/models/baseline/1/model.json').expect(200);
    assert.equal(modelJson.body.format, 'layers-model');
    const shard = modelJson.body.weightsManifest[0].paths[0];
    const bin = await api.get(`/ui/models/baseline/1/${shard}`).buffer(true).expect(200);
    assert.equal(bin.body.length, readFileSync(path.join(BASELINE, 'tfjs', shard)).length);
    for (const p of [
      '/ui/models/baseline/1/model.onnx', // listed in the manifest, but not part of the TF.js artifact
      '/ui/models/baseline/1/..%2Fmodel.onnx',
      '/ui/models/baseline/1/%2e%2e%2f%2e%2e%2frouting.json',
      '/ui/models/baseline/9/model.json', // not loaded
      '/ui/models/nosuch/1/model.json',
      '/ui/..%2F..%2Fpackage.json',
      '/ui/.hidden',
      '/docs/..%2F..%2Fpackage.json',
    ]) {
      const res = await api.get(p);
      assert.ok(res.status === 404 || res.status === 400, `${p}: ${res.status}`);
      assert.ok(res.body.error?.code, `${p}: an error object`);
    }
  });

  it('adds no CORS headers unless CORS_ORIGINS is set: a preflight is an ordinary OPTIONS (405)', async () => {
    const res = await api.get('/v1/models').set('Origin', 'https://shop.example.com').expect(200);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    await api.options('/v1/classify').set('Origin', 'https://shop.example.com').set('Access-Control-Request-Method', 'POST').expect(405);
  });
});

describe('TRY_IT_PAGE=off', () => {
  let service: Started;
  before(async () => {
    service = await startService({ TRY_IT_PAGE: 'off' });
  });
  after(async () => {
    await service.stop();
  });

  it('removes the try-it page and its files; the API description stays', async () => {
    const api = request(`http://127.0.0.1:${service.port}`);
    for (const p of ['/', '/ui/app.js', '/ui/vendor/tf.min.js', '/ui/models/baseline/1/model.json', '/docs/app.js', '/docs/index.html']) {
      const res = await api.get(p).expect(404);
      assert.equal(res.body.error.code, 'NOT_FOUND', p);
    }
    await api.get('/openapi.json').expect(200);
    await api.get('/docs').expect(200);
  });
});

describe('CORS_ORIGINS', () => {
  let service: Started;
  let api: ReturnType<typeof request>;
  const SHOP = 'https://shop.example.com';

  before(async () => {
    service = await startService({ CORS_ORIGINS: `${SHOP},http://localhost:3000` });
    api = request(`http://127.0.0.1:${service.port}`);
  });
  after(async () => {
    await service.stop();
  });

  it('answers a preflight from a listed origin with the methods and headers the API takes', async () => {
    const res = await api
      .options('/v1/classify')
      .set('Origin', SHOP)
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'content-type, x-routing-key')
      .expect(204);
    assert.equal(res.headers['access-control-allow-origin'], SHOP);
    assert.match(res.headers['access-control-allow-methods'], /POST/);
    assert.match(res.headers['access-control-allow-headers'], /X-Routing-Key/);
    assert.match(res.headers['access-control-allow-headers'], /Content-Type/);
    assert.ok(Number(res.headers['access-control-max-age']) > 0);
    assert.match(res.headers.vary, /Origin/);
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
  });

  it('marks an answer to a listed origin readable, exposing the model headers', async () => {
    const res = await api.get('/v1/models').set('Origin', 'http://localhost:3000').expect(200);
    assert.equal(res.headers['access-control-allow-origin'], 'http://localhost:3000');
    assert.match(res.headers['access-control-expose-headers'], /X-Model-Arm/);
    assert.match(res.headers.vary, /Origin/);
  });

  it('refuses a preflight from an origin not listed, and gives its requests no CORS headers', async () => {
    const pre = await api
      .options('/v1/classify')
      .set('Origin', 'https://evil.example')
      .set('Access-Control-Request-Method', 'POST')
      .expect(403);
    assert.equal(pre.body.error.code, 'PERMISSION_DENIED');
    assert.match(pre.body.error.message, /evil\.example/);
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
    const res = await api.get('/v1/models').set('Origin', 'https://evil.example').expect(200);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
  });

  it('leaves same-origin and non-browser requests as they were', async () => {
    const res = await api.get('/v1/models').expect(200);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    await api.options('/v1/classify').expect(405);
  });
});

describe('CORS_ORIGINS=*', () => {
  let service: Started;
  before(async () => {
    service = await startService({ CORS_ORIGINS: '*' });
  });
  after(async () => {
    await service.stop();
  });

  it('allows any origin with the wildcard', async () => {
    const api = request(`http://127.0.0.1:${service.port}`);
    const res = await api
      .options('/v2/models/baseline/infer')
      .set('Origin', 'https://anyone.example')
      .set('Access-Control-Request-Method', 'POST')
      .expect(204);
    assert.equal(res.headers['access-control-allow-origin'], '*');
  });
});
