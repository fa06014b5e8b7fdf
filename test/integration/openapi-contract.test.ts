/**
 * api/openapi.json against the service's real answers: requests covering
 * every route and most of the statuses each can answer (successes, the
 * errors of each kind, 404 and 405, HEAD, CORS preflights, the pages with
 * TRY_IT_PAGE=off, a drain) all go through a service started by
 * startService(), whose contract checker validates every answer; the test
 * asserts it checked them all and found nothing the document does not say.
 * The shipped models carry an out-of-distribution score (their manifests'
 * `ood` blocks), so the answers hold its verdict and the abstentions of
 * both reasons; copies of the models without the block give the answers of
 * a model without one.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { fixtureBytes, fixtureImages, shippedVersions, startService, tempModelDir, type TestService } from '../helpers';

const TOKEN = 'contract-admin-token-0123456789';
const ORIGIN = 'https://shop.example.com';
const fixtures = fixtureImages();
const png = fixtureBytes(fixtures[0].file);
const b64 = png.toString('base64');
const black = new Array(784).fill(0);
/** A fixture the baseline labels with confidence 0.63 (under ABSTAIN_MIN_CONFIDENCE 0.9), its score under the threshold. */
const unsure = fixtureBytes('t10k-00016.png');
/** A fixture the baseline's out-of-distribution score flags (4.0 > 3.5). */
const unusual = fixtureBytes('t10k-00032.png');

type Case = [what: string, send: (api: ReturnType<typeof request>) => request.Test, status: number | number[]];

describe('the OpenAPI document against real answers', () => {
  let service: TestService;
  let api: ReturnType<typeof request>;

  before(async () => {
    service = await startService({
      ADMIN_TOKEN: TOKEN,
      CLASSIFY_MAX_IMAGES: '4',
      MAX_IMAGE_BYTES: String(64 * 1024),
      MAX_JSON_BYTES: String(256 * 1024),
      CORS_ORIGINS: ORIGIN,
      // ABSTAIN stays off: only requests that ask abstain, and these fixtures then do.
      ABSTAIN_MIN_CONFIDENCE: '0.9',
    });
    api = request(`http://127.0.0.1:${service.port}`);
  });
  after(async () => {
    await service.stop(); // throws when an answer did not match the document
  });

  const run = async (cases: Case[]) => {
    for (const [what, send, status] of cases) {
      const res = await send(api);
      const expected = Array.isArray(status) ? status : [status];
      assert.ok(expected.includes(res.status), `${what}: ${res.status} ${String(res.text ?? '').slice(0, 300)}`);
    }
    assert.deepEqual(service.contract.violations, []);
  };

  it('describes the product API: classify, batch, feedback, models, A/B, health', async () => {
    const first = await api.post('/v1/classify').set('X-Routing-Key', 'shopper-1').attach('image', png, 'a.png').expect(200);
    const id = first.body.predictionId as string;
    const tampered = `${id.slice(0, -1)}${id.endsWith('A') ? 'B' : 'A'}`;
    const abstained = await api.post('/v1/classify').field('abstain', 'true').attach('image', unsure, 'u.png').expect(200);
    assert.equal(abstained.body.abstained, 'low-confidence');
    assert.ok(!('label' in abstained.body) && !('labelIndex' in abstained.body), 'an abstained answer has no label');
    await run([
      ['classify base64 JSON', (a) => a.post('/v1/classify').send({ image: b64, topK: 1 }), 200],
      [
        'classify data URL, version as a JSON integer',
        (a) => a.post('/v1/classify').send({ image: `data:image/png;base64,${b64}`, model: 'baseline', version: 1 }),
        200,
      ],
      [
        'classify pixels, options in the query',
        (a) => a.post('/v1/classify?topK=10&model=dendritic').set('X-Request-Id', 'contract-1').send({ pixels: black }),
        200,
      ],
      [
        'classify form fields',
        (a) => a.post('/v1/classify').field('topK', '2').field('routingKey', 'k').attach('image', png, 'a.png'),
        200,
      ],
      [
        'classify abstain in JSON, abstained',
        (a) => a.post('/v1/classify').send({ image: unusual.toString('base64'), abstain: true }),
        200,
      ],
      ['classify abstain in the query, answered', (a) => a.post('/v1/classify?abstain=true').send({ image: b64 }), 200],
      [
        'classify abstain false, a flagged photo answered',
        (a) => a.post('/v1/classify?abstain=true').field('abstain', 'false').field('model', 'baseline').attach('image', unusual, 'x.png'),
        200,
      ],
      ['classify abstain not a JSON boolean', (a) => a.post('/v1/classify').send({ image: b64, abstain: 'true' }), 400],
      [
        'classify abstain form field not true or false',
        (a) => a.post('/v1/classify').field('abstain', '1').attach('image', png, 'a.png'),
        400,
      ],
      ['classify bad base64', (a) => a.post('/v1/classify').send({ image: '!!' }), 400],
      ['classify unknown field', (a) => a.post('/v1/classify').send({ image: b64, topk: 1 }), 400],
      ['classify empty JSON body', (a) => a.post('/v1/classify').set('Content-Type', 'application/json'), 400],
      ['classify malformed JSON', (a) => a.post('/v1/classify').set('Content-Type', 'application/json').send('{"pixels": ['), 400],
      ['classify unknown model', (a) => a.post('/v1/classify').send({ pixels: black, model: 'nope' }), 404],
      ['classify unknown version', (a) => a.post('/v1/classify').send({ pixels: black, model: 'baseline', version: '9' }), 404],
      ['classify image too large', (a) => a.post('/v1/classify').attach('image', Buffer.alloc(70 * 1024, 1), 'big.png'), 413],
      ['classify JSON too large', (a) => a.post('/v1/classify').send({ pixels: new Array(300_000).fill(0) }), 413],
      ['classify text/plain', (a) => a.post('/v1/classify').set('Content-Type', 'text/plain').send('hi'), 415],
      ['classify a PDF', (a) => a.post('/v1/classify').attach('image', Buffer.from('%PDF-1.4 ...'), 'x.pdf'), 415],
      ['classify GET', (a) => a.get('/v1/classify'), 405],
      [
        'batch multipart with a failing item',
        (a) => a.post('/v1/classify/batch').attach('images', png, 'a.png').attach('images', Buffer.from('hello'), 'b.txt'),
        200,
      ],
      ['batch JSON', (a) => a.post('/v1/classify/batch').send({ images: [{ image: b64 }, { pixels: black }], topK: 1 }), 200],
      ['batch of failures only', (a) => a.post('/v1/classify/batch').send({ images: [{ pixels: [1, 2] }] }), 200],
      [
        'batch JSON, abstain, one labelled and two abstained',
        (a) =>
          a
            .post('/v1/classify/batch')
            .send({ images: [{ image: b64 }, { image: unsure.toString('base64') }, { image: unusual.toString('base64') }], abstain: true }),
        200,
      ],
      [
        'batch multipart, abstain',
        (a) => a.post('/v1/classify/batch?abstain=true').attach('images', unsure, 'u.png').attach('images', png, 'a.png'),
        200,
      ],
      ['batch too many', (a) => a.post('/v1/classify/batch').send({ images: new Array(5).fill({ pixels: black }) }), 400],
      ['batch empty', (a) => a.post('/v1/classify/batch').send({ images: [] }), 400],
      ['feedback', (a) => a.post('/v1/feedback').send({ predictionId: id, label: 'pullover' }), 200],
      ['feedback repeated, by index', (a) => a.post('/v1/feedback').send({ predictionId: id, labelIndex: 4 }), 200],
      [
        'feedback on an abstained prediction',
        (a) => a.post('/v1/feedback').send({ predictionId: abstained.body.predictionId, label: 'Shirt' }),
        200,
      ],
      ['feedback tampered', (a) => a.post('/v1/feedback').send({ predictionId: tampered, label: 'Bag' }), 403],
      ['feedback malformed id', (a) => a.post('/v1/feedback').send({ predictionId: 'x', label: 'Bag' }), 400],
      ['feedback unknown label', (a) => a.post('/v1/feedback').send({ predictionId: id, label: 'Hat' }), 400],
      ['feedback multipart', (a) => a.post('/v1/feedback').field('predictionId', id), 415],
      ['models', (a) => a.get('/v1/models'), 200],
      ['models HEAD', (a) => a.head('/v1/models'), 200],
      ['models DELETE', (a) => a.delete('/v1/models'), 405],
      ['A/B report without a config, with abstentions', (a) => a.get('/v1/ab'), 200],
      ['liveness', (a) => a.get('/healthz'), 200],
      ['liveness, as express matches it', (a) => a.get('/HEALTHZ/'), 200],
      ['liveness OPTIONS, not a preflight', (a) => a.options('/healthz'), 405],
      ['readiness', (a) => a.get('/readyz'), 200],
      ['readiness POST', (a) => a.post('/readyz'), 405],
      ['unknown path', (a) => a.get('/v1/nothing'), 404],
      ['unknown path, POST', (a) => a.post('/v1/models/baseline').send({}), 404],
    ]);
  });

  it('describes the admin routes', async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const config = {
      experiment: 'contract',
      coverage: 0.5,
      arms: [
        { name: 'control', model: 'baseline', weight: 1 },
        { name: 'candidate', model: 'dendritic', version: '1', weight: 1 },
      ],
      shadow: { model: 'dendritic', fraction: 1 },
    };
    await run([
      ['reload without a token', (a) => a.post('/v1/admin/models/reload'), 401],
      ['reload with a wrong token', (a) => a.post('/v1/admin/models/reload').set('Authorization', 'Bearer wrong-token-0123456789'), 401],
      ['reload', (a) => a.post('/v1/admin/models/reload').set(auth), 200],
      ['routing, none', (a) => a.get('/v1/admin/routing').set(auth), 200],
      [
        'routing refused',
        (a) =>
          a
            .put('/v1/admin/routing')
            .set(auth)
            .send({ ...config, arms: [{ name: 'c', model: 'missing', weight: 1 }] }),
        400,
      ],
      ['routing, with the refusal', (a) => a.get('/v1/admin/routing').set(auth), 200],
      ['routing not JSON', (a) => a.put('/v1/admin/routing').set(auth).set('Content-Type', 'text/plain').send('x'), 400],
      [
        'routing in latin9',
        (a) => a.put('/v1/admin/routing').set(auth).set('Content-Type', 'application/json; charset=latin9').send('{}'),
        415,
      ],
      ['routing set', (a) => a.put('/v1/admin/routing').set(auth).send(config), 200],
      ['routing DELETE', (a) => a.delete('/v1/admin/routing').set(auth), 405],
      ['an experiment arm', (a) => a.post('/v1/classify').set('X-Routing-Key', 'alice').attach('image', png, 'a.png'), 200],
      ['another', (a) => a.post('/v1/classify').set('X-Routing-Key', 'bob').attach('image', png, 'a.png'), 200],
      [
        'an abstention in an arm',
        (a) => a.post('/v1/classify').set('X-Routing-Key', 'alice').field('abstain', 'true').attach('image', unsure, 'u.png'),
        200,
      ],
      ['A/B report with an experiment and a shadow', (a) => a.get('/v1/ab'), 200],
      ['routing with the experiment', (a) => a.get('/v1/admin/routing').set(auth), 200],
    ]);
  });

  it('describes the Open Inference Protocol routes', async () => {
    const pixels = { name: 'pixels', shape: [1, 28, 28], datatype: 'UINT8', data: black };
    await run([
      ['server metadata', (a) => a.get('/v2'), 200],
      ['server metadata POST', (a) => a.post('/v2'), 405],
      ['live', (a) => a.get('/v2/health/live'), 200],
      ['ready', (a) => a.get('/v2/health/ready'), 200],
      ['model list', (a) => a.get('/v2/models'), 200],
      ['repository index', (a) => a.post('/v2/repository/index').send({ ready: true }), 200],
      ['model metadata', (a) => a.get('/v2/models/baseline'), 200],
      ['version metadata', (a) => a.get('/v2/models/dendritic/versions/1'), 200],
      ['metadata, bad name', (a) => a.get('/v2/models/bad.name'), 400],
      ['metadata, unknown model', (a) => a.get('/v2/models/nope'), 404],
      ['metadata, unknown version', (a) => a.get('/v2/models/baseline/versions/7'), 404],
      ['model ready', (a) => a.get('/v2/models/baseline/ready'), 200],
      ['version ready', (a) => a.get('/v2/models/baseline/versions/1/ready'), 200],
      ['unknown model not ready', (a) => a.get('/v2/models/nope/ready'), 400],
      ['infer pixels, all outputs', (a) => a.post('/v2/models/baseline/infer').send({ id: 'c1', inputs: [pixels] }), 200],
      [
        'infer a version, image BYTES, some outputs',
        (a) =>
          a.post('/v2/models/dendritic/versions/1/infer').send({
            inputs: [{ name: 'image', shape: [2], datatype: 'BYTES', data: [b64, b64] }],
            outputs: [{ name: 'label' }, { name: 'prediction_id' }, { name: 'label_index' }],
          }),
        200,
      ],
      [
        'infer with parameters.abstain: label_index -1, label "" and the reason',
        (a) =>
          a.post('/v2/models/baseline/infer').send({
            inputs: [{ name: 'image', shape: [2], datatype: 'BYTES', data: [b64, unsure.toString('base64')] }],
            parameters: { abstain: true, client: 'kept' },
          }),
        200,
      ],
      [
        'infer parameters.abstain not a JSON boolean',
        (a) => a.post('/v2/models/baseline/infer').send({ inputs: [pixels], parameters: { abstain: 'yes' } }),
        400,
      ],
      [
        'infer, ood_score and abstained named',
        (a) =>
          a.post('/v2/models/dendritic/versions/1/infer').send({
            inputs: [{ name: 'pixels', shape: [1, 784], datatype: 'UINT8', data: black }],
            outputs: [{ name: 'ood_score' }, { name: 'abstained' }, { name: 'label_index' }],
            parameters: { abstain: true },
          }),
        200,
      ],
      ['infer bad inputs', (a) => a.post('/v2/models/baseline/infer').send({ inputs: 'x' }), 400],
      ['infer empty body', (a) => a.post('/v2/models/baseline/infer').set('Content-Type', 'application/json'), 400],
      ['infer unknown model', (a) => a.post('/v2/models/nope/infer').send({ inputs: [pixels] }), 404],
      ['infer text/plain', (a) => a.post('/v2/models/baseline/infer').set('Content-Type', 'text/plain').send('x'), 415],
      [
        'infer a text file as an image',
        (a) =>
          a
            .post('/v2/models/baseline/infer')
            .send({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: ['bm90IGFuIGltYWdl'] }] }),
        415,
      ],
      [
        'infer too large',
        (a) => a.post('/v2/models/baseline/infer').send({ inputs: [{ ...pixels, data: new Array(300_000).fill(0) }] }),
        413,
      ],
      ['infer GET', (a) => a.get('/v2/models/baseline/infer'), 405],
      ['unknown /v2 path', (a) => a.get('/v2/nothing'), 404],
    ]);
  });

  it('describes the document, /docs and the try-it page', async () => {
    // The pages need the web bundle (npm run build:web): without it they answer 404, which the document also says.
    await run([
      ['this document', (a) => a.get('/openapi.json'), 200],
      ['this document PUT', (a) => a.put('/openapi.json').send({}), 405],
      ['Swagger UI page', (a) => a.get('/docs'), 200],
      ['Swagger UI styles', (a) => a.get('/docs/swagger-ui.css'), 200],
      [
        'Swagger UI styles, not modified',
        (a) => a.get('/docs/swagger-ui.css').set('If-Modified-Since', 'Fri, 01 Jan 2100 00:00:00 GMT'),
        304,
      ],
      [
        'Swagger UI styles, a Range header ignored (the files are small)',
        (a) => a.get('/docs/swagger-ui.css').set('Range', 'bytes=0-9'),
        200,
      ],
      ['no such docs file', (a) => a.get('/docs/nothing.js'), 404],
      ['try-it page', (a) => a.get('/'), 200],
      ['try-it page POST', (a) => a.post('/'), 405],
      ['try-it script', (a) => a.get('/ui/app.js'), 200],
      ['TF.js', (a) => a.head('/ui/vendor/tf.min.js'), 200],
      ['a model manifest', (a) => a.get('/ui/models/baseline/1/manifest.json'), 200],
      ['a TF.js model', (a) => a.get('/ui/models/baseline/1/model.json'), 200],
      ['a TF.js weight shard', (a) => a.get('/ui/models/baseline/1/group1-shard1of1.bin'), 200],
      ['a model file not listed', (a) => a.get('/ui/models/baseline/1/model.onnx'), 404],
      ['a bad model name', (a) => a.get('/ui/models/bad.name/1/model.json'), 400],
    ]);
  });

  it('leaves CORS preflights out, and checks the calls they precede', async () => {
    const exempt = service.contract.exempt;
    await run([
      [
        'preflight from a listed origin',
        (a) => a.options('/v1/classify').set('Origin', ORIGIN).set('Access-Control-Request-Method', 'POST'),
        204,
      ],
      [
        'preflight from another origin',
        (a) => a.options('/v1/classify').set('Origin', 'https://evil.example').set('Access-Control-Request-Method', 'POST'),
        403,
      ],
      ['the call', (a) => a.post('/v1/classify').set('Origin', ORIGIN).send({ pixels: black }), 200],
    ]);
    assert.equal(service.contract.exempt, exempt + 2);
  });

  it('checked every answer', () => {
    assert.ok(service.contract.checked >= 90, `${service.contract.checked} answers checked`);
    assert.deepEqual(service.contract.violations, []);
  });
});

describe('the OpenAPI document against the answers of models without an out-of-distribution score', () => {
  let service: TestService;
  let api: ReturnType<typeof request>;

  before(async () => {
    // Copies of the shipped models without the `ood` block their manifests carry.
    const dir = await tempModelDir();
    for (const model of ['baseline', 'dendritic']) {
      for (const version of shippedVersions(model)) {
        const file = path.join(dir, model, version, 'manifest.json');
        const manifest = JSON.parse(await readFile(file, 'utf8'));
        delete manifest.ood;
        await writeFile(file, JSON.stringify(manifest, null, 2));
      }
    }
    service = await startService({ MODEL_DIR: dir, ABSTAIN: 'ood+confidence', ABSTAIN_MIN_CONFIDENCE: '0.9' });
    api = request(`http://127.0.0.1:${service.port}`);
  });
  after(async () => {
    await service.stop(); // throws when an answer did not match the document
  });

  it('describes answers without `ood`, abstentions for low confidence, and OIP without ood_score', async () => {
    const unsureAnswer = await api
      .post('/v1/classify')
      .send({ image: unsure.toString('base64') })
      .expect(200);
    assert.equal(unsureAnswer.body.abstained, 'low-confidence', 'ABSTAIN=ood+confidence abstains on it');
    assert.ok(!('ood' in unsureAnswer.body), 'no verdict without a score');
    const cases: Case[] = [
      ['classify, labelled', (a) => a.post('/v1/classify').attach('image', png, 'a.png'), 200],
      ['classify, unusual but never flagged', (a) => a.post('/v1/classify?abstain=false').attach('image', unusual, 'x.png'), 200],
      [
        'batch',
        (a) => a.post('/v1/classify/batch').send({ images: [{ image: b64 }, { image: unsure.toString('base64') }], model: 'baseline' }),
        200,
      ],
      [
        'feedback on the abstained prediction',
        (a) => a.post('/v1/feedback').send({ predictionId: unsureAnswer.body.predictionId, label: 'Shirt' }),
        200,
      ],
      ['A/B report', (a) => a.get('/v1/ab'), 200],
      ['model metadata without parameters', (a) => a.get('/v2/models/baseline'), 200],
      [
        'infer, all outputs: no ood_score',
        (a) =>
          a
            .post('/v2/models/baseline/infer')
            .send({ inputs: [{ name: 'image', shape: [2], datatype: 'BYTES', data: [b64, unsure.toString('base64')] }] }),
        200,
      ],
      [
        'infer ood_score of a model without a score',
        (a) =>
          a.post('/v2/models/baseline/infer').send({
            inputs: [{ name: 'pixels', shape: [1, 28, 28], datatype: 'UINT8', data: black }],
            outputs: [{ name: 'ood_score' }],
          }),
        400,
      ],
    ];
    for (const [what, send, status] of cases) {
      const res = await send(api);
      assert.equal(res.status, status, `${what}: ${res.status} ${String(res.text ?? '').slice(0, 300)}`);
    }
    const metadata = await api.get('/v2/models/baseline').expect(200);
    assert.ok(!('parameters' in metadata.body) && !metadata.body.outputs.some((o: { name: string }) => o.name === 'ood_score'));
    assert.deepEqual(service.contract.violations, []);
    assert.ok(service.contract.checked >= 10, `${service.contract.checked} answers checked`);
  });
});

describe('the OpenAPI document against the answers of a draining service without the try-it page', () => {
  it('describes 503s, the not-ready answers and the routes TRY_IT_PAGE=off removes', async () => {
    const service = await startService({ TRY_IT_PAGE: 'off' });
    const api = request(`http://127.0.0.1:${service.port}`);
    for (const [path, method] of [
      ['/', 'get'],
      ['/ui/vendor/tf.min.js', 'get'],
      ['/ui/app.js', 'post'],
    ] as const) {
      assert.equal((await api[method](path)).status, 404, `${method} ${path} with TRY_IT_PAGE=off`);
    }
    // A request in flight (its body not sent yet) keeps the service draining while the others arrive.
    const socket = net.connect(service.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const body = JSON.stringify({ pixels: black });
    const arrived = new Promise((resolve) => service.httpServer.once('request', resolve));
    socket.write(`POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.write(body.slice(0, 10));
    await arrived;
    const answer = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('close', () => resolve(text));
    });
    const stopped = service.stop();
    const statuses: string[] = [];
    for (const [path, send] of [
      ['/readyz', api.get('/readyz')],
      ['/v2/health/ready', api.get('/v2/health/ready')],
      ['/v2/models/baseline/ready', api.get('/v2/models/baseline/ready')],
      ['/v1/classify', api.post('/v1/classify').send({ pixels: black })],
      ['/v1/classify/batch', api.post('/v1/classify/batch').send({ images: [{ pixels: black }] })],
      ['/v1/feedback', api.post('/v1/feedback').send({ predictionId: 'x.y', label: 'Bag' })],
      ['/v2/models/baseline/infer', api.post('/v2/models/baseline/infer').send({ inputs: [] })],
    ] as const) {
      statuses.push(`${path} ${(await send).status}`);
    }
    assert.deepEqual(statuses, [
      '/readyz 503',
      '/v2/health/ready 400',
      '/v2/models/baseline/ready 400',
      '/v1/classify 503',
      '/v1/classify/batch 503',
      '/v1/feedback 503',
      '/v2/models/baseline/infer 503',
    ]);
    socket.write(body.slice(10));
    assert.match(await answer, /^HTTP\/1\.1 200 /);
    await stopped; // throws when an answer did not match the document
    assert.ok(service.contract.checked >= 11, `${service.contract.checked} answers checked`);
  });
});
