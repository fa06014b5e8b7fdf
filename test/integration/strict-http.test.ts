/**
 * What the README promises about input, kept: unknown and misspelt options
 * and wrong types are INVALID_ARGUMENT naming the field (never ignored), an
 * empty JSON body is a bad request (not an unsupported media type), a known
 * path with the wrong method is 405 with Allow, and the model lists that
 * KServe and Triton clients call exist.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { fixtureBytes, fixtureImages, shippedVersions, startService } from '../helpers';

const png = fixtureBytes(fixtureImages()[0].file);
const b64 = png.toString('base64');

describe('strict HTTP input', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  let api: ReturnType<typeof request>;

  before(async () => {
    service = await startService();
    api = request(`http://127.0.0.1:${service.port}`);
  });
  after(async () => {
    await service.stop();
  });

  const refused = (res: request.Response, message: RegExp) => {
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'INVALID_ARGUMENT');
    assert.match(res.body.error.message, message);
  };

  it('refuses unknown and misspelt options on every body form and the query string, naming the field', async () => {
    refused(await api.post('/v1/classify').send({ image: b64, topk: 1 }), /unknown field "topk" in the body/);
    refused(await api.post('/v1/classify').send({ image: b64, foo: 1 }), /unknown field "foo"/);
    refused(
      await api.post('/v1/classify').field('modle', 'dendritic').attach('image', png, 'a.png'),
      /unknown field "modle" in the form fields/,
    );
    refused(await api.post('/v1/classify?modle=dendritic').attach('image', png, 'a.png'), /unknown field "modle" in the query string/);
    refused(await api.post('/v1/classify/batch').send({ images: [{ image: b64 }], topk: 1 }), /unknown field "topk" in the body/);
    refused(
      await api.post('/v1/classify/batch').send({ images: [{ image: b64, model: 'baseline' }] }),
      /unknown field "model" in images\[0\]/,
    );
    refused(await api.post('/v1/feedback').send({ predictionId: 'x', label: 'Bag', note: 'hi' }), /unknown field "note" in the body/);
    const oip = await api
      .post('/v2/models/baseline/infer')
      .send({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], data: [b64] }], output: [] });
    assert.equal(oip.status, 400);
    assert.match(oip.body.error, /unknown field "output" in the request/);
  });

  it('refuses wrong types instead of converting them', async () => {
    refused(await api.post('/v1/classify').send({ image: b64, topK: '2' }), /topK must be an integer \(a JSON number\)/);
    refused(await api.post('/v1/classify').send({ image: b64, model: 7 }), /model must be a string/);
    refused(await api.post('/v1/classify').send({ image: b64, routingKey: ['a'] }), /routingKey must be given once/);
    // Text sources carry numbers as digits: the same option is accepted there.
    const form = await api.post('/v1/classify').field('topK', '2').attach('image', png, 'a.png').expect(200);
    assert.equal(form.body.top.length, 2);
    const query = await api.post('/v1/classify?topK=4').send({ image: b64 }).expect(200);
    assert.equal(query.body.top.length, 4);
    const typed = await api.post('/v1/classify').send({ image: b64, topK: 1, version: 1, model: 'baseline' }).expect(200);
    assert.deepEqual([typed.body.top.length, typed.body.version, typed.body.arm], [1, '1', 'explicit']);
  });

  it('answers an empty JSON body as a bad request, not an unsupported media type', async () => {
    for (const path of ['/v1/classify', '/v1/classify/batch', '/v1/feedback']) {
      const res = await api.post(path).set('Content-Type', 'application/json');
      assert.equal(res.status, 400, path);
      assert.equal(res.body.error.code, 'INVALID_ARGUMENT');
      assert.equal(res.body.error.message, 'the JSON body is empty; send a JSON object');
    }
    const wrongType = await api.post('/v1/classify').set('Content-Type', 'text/plain').send('hello');
    assert.equal(wrongType.status, 415);
    assert.match(wrongType.body.error.message, /content type text\/plain is not accepted/);
  });

  it('answers a known path with the wrong method 405 and its Allow list', async () => {
    const cases: Array<[string, string, string]> = [
      ['get', '/v1/classify', 'POST'],
      ['put', '/v1/classify/batch', 'POST'],
      ['delete', '/v1/models', 'GET, HEAD'],
      ['post', '/readyz', 'GET, HEAD'],
    ];
    for (const [method, path, allow] of cases) {
      const res = await (api as unknown as Record<string, (p: string) => request.Test>)[method](path);
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.allow, allow);
      assert.equal(res.body.error.code, 'METHOD_NOT_ALLOWED');
    }
    const oip = await api.get('/v2/models/baseline/infer');
    assert.equal(oip.status, 405);
    assert.equal(oip.headers.allow, 'POST');
    assert.match(oip.body.error, /GET is not allowed/);
    await api.get('/v1/no-such-route').expect(404);
  });

  it('lists models the way KServe and Triton clients ask', async () => {
    const list = await api.get('/v2/models').expect(200);
    assert.deepEqual(list.body, { models: ['baseline', 'dendritic'] });
    const index = await api.post('/v2/repository/index').send({}).expect(200);
    assert.deepEqual(
      index.body.map((e: { name: string; version: string; state: string }) => `${e.name}/${e.version}:${e.state}`),
      ['baseline', 'dendritic'].flatMap((name) => shippedVersions(name).map((v) => `${name}/${v}:READY`)),
    );
  });
});
