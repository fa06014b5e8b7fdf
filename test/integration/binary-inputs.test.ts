/**
 * Raw uint8 pixels over real sockets: /v1/classify and /v1/classify/batch
 * take application/octet-stream bodies of 28x28 grayscale images, one
 * after another, and answer as the JSON form of the same request does, for
 * the committed fixture images; wrong lengths and too many images are
 * refused with the JSON path's codes. Also the JSON bodies the service now
 * reads itself: written any way JSON allows, compressed, in UTF-16. Every
 * answer is also checked against api/openapi.json.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { fixtureBytes, fixtureImages, startService } from '../helpers';

const fixtures = fixtureImages().slice(0, 6);
const MAX_JSON_BYTES = 100_000;
const MAX_IMAGES = 16;

interface Answer {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json?: any;
}

describe('binary inputs', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  let base: string;
  let pixels: Buffer[];
  /** The model's labels for the fixtures, from a JSON request (what every binary form must answer). */
  let labels: string[];

  before(async () => {
    service = await startService({ MAX_JSON_BYTES: String(MAX_JSON_BYTES), CLASSIFY_MAX_IMAGES: String(MAX_IMAGES) });
    base = `http://127.0.0.1:${service.port}`;
    pixels = await Promise.all(fixtures.map((f) => sharp(fixtureBytes(f.file)).greyscale().raw().toBuffer()));
    for (const p of pixels) assert.equal(p.length, 784);
    const res = await fetch(`${base}/v2/models/baseline/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        inputs: [{ name: 'pixels', shape: [pixels.length, 28, 28], datatype: 'UINT8', data: Array.from(Buffer.concat(pixels)) }],
        outputs: [{ name: 'label' }],
      }),
    });
    labels = ((await res.json()) as any).outputs[0].data;
    assert.equal(labels.length, fixtures.length);
  });
  after(async () => {
    await service.stop();
  });

  const post = async (url: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<Answer> => {
    const res = await fetch(`${base}${url}`, { method: 'POST', body, headers });
    const bytes = Buffer.from(await res.arrayBuffer());
    const type = res.headers.get('content-type') ?? '';
    return {
      status: res.status,
      headers: res.headers,
      bytes,
      json: type.startsWith('application/json') ? JSON.parse(bytes.toString()) : undefined,
    };
  };
  const postJson = (url: string, value: unknown, headers: Record<string, string> = {}) =>
    post(url, JSON.stringify(value), { 'content-type': 'application/json', ...headers });
  const ok = (a: Answer) => {
    assert.equal(a.status, 200, a.bytes.toString().slice(0, 500));
    return a;
  };
  const refused = (a: Answer, status: number, code: string, message: RegExp) => {
    assert.equal(a.status, status, a.bytes.toString().slice(0, 500));
    assert.equal(a.json?.error?.code, code);
    assert.match(a.json.error.message, message);
  };

  describe('raw uint8 pixels on /v1/classify and /v1/classify/batch', () => {
    const octets = { 'content-type': 'application/octet-stream' };

    it('classifies a raw batch as the JSON batch of the same images, options from the query string', async () => {
      const raw = ok(await post('/v1/classify/batch?topK=2&model=baseline', Buffer.concat(pixels), octets));
      const json = ok(
        await postJson('/v1/classify/batch', { images: pixels.map((p) => ({ pixels: Array.from(p) })), topK: 2, model: 'baseline' }),
      );
      assert.equal(raw.json.results.length, fixtures.length);
      const strip = (r: any) => ({ ...r, predictionId: undefined, timings: undefined });
      assert.deepStrictEqual(raw.json.results.map(strip), json.json.results.map(strip));
      assert.deepEqual(
        raw.json.results.map((r: { label: string }) => r.label),
        labels,
      );
      for (const r of raw.json.results) assert.equal(r.top.length, 2);
      assert.equal(raw.headers.get('x-model-name'), 'baseline');
      // The routing key from the header, as for every form.
      const keyed = ok(await post('/v1/classify/batch', pixels[0], { ...octets, 'x-routing-key': 'shopper-1' }));
      assert.equal(keyed.json.results[0].label, labels[0]);
      // A compressed raw body is inflated first.
      const gz = ok(
        await post('/v1/classify/batch?topK=2&model=baseline', gzipSync(Buffer.concat(pixels)), { ...octets, 'content-encoding': 'gzip' }),
      );
      assert.deepStrictEqual(gz.json.results.map(strip), json.json.results.map(strip));
    });

    it('classifies 784 raw bytes on /v1/classify as the same pixels in JSON', async () => {
      const raw = ok(await post('/v1/classify?topK=10', pixels[1], octets));
      const json = ok(await postJson('/v1/classify', { pixels: Array.from(pixels[1]), topK: 10 }));
      assert.equal(raw.json.label, labels[1]);
      assert.deepStrictEqual(raw.json.top, json.json.top);
      assert.deepStrictEqual(raw.json.ood, json.json.ood);
    });

    it('refuses wrong lengths and too many images with the JSON path codes', async () => {
      refused(
        await post('/v1/classify/batch', Buffer.concat(pixels).subarray(1), octets),
        400,
        'INVALID_ARGUMENT',
        /raw 28x28 images of 784 bytes each; got 4703 bytes, 5 images and 783 bytes over/,
      );
      refused(await post('/v1/classify/batch', Buffer.alloc(0), octets), 400, 'INVALID_ARGUMENT', /a batch needs at least one image/);
      refused(
        await post('/v1/classify/batch', Buffer.alloc((MAX_IMAGES + 1) * 784), octets),
        400,
        'INVALID_ARGUMENT',
        new RegExp(`a request holds at most ${MAX_IMAGES} images; got ${MAX_IMAGES + 1}`),
      );
      refused(
        await post('/v1/classify/batch', Buffer.alloc(MAX_JSON_BYTES + 784), octets),
        413,
        'PAYLOAD_TOO_LARGE',
        new RegExp(`larger than the limit of ${MAX_JSON_BYTES} bytes`),
      );
      refused(
        await post('/v1/classify', Buffer.alloc(785), octets),
        400,
        'INVALID_ARGUMENT',
        /pixels must have 784 values \(28x28 grayscale\), got 785/,
      );
      refused(await post('/v1/classify', Buffer.alloc(0), octets), 400, 'INVALID_ARGUMENT', /got 0/);
      refused(
        await post('/v1/classify/batch?topk=2', pixels[0], octets),
        400,
        'INVALID_ARGUMENT',
        /unknown field "topk" in the query string/,
      );
      refused(
        await post('/v1/classify/batch', pixels[0], { 'content-type': 'image/x-raw' }),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        /application\/octet-stream \(raw 28x28 grayscale pixels/,
      );
    });
  });

  describe('the JSON bodies the service now reads itself', () => {
    it('keeps compressed and UTF-16 JSON bodies working (body-parser reads those)', async () => {
      const body = JSON.stringify({ pixels: Array.from(pixels[2]), topK: 1 });
      const viaGzip = ok(await post('/v1/classify', gzipSync(body), { 'content-type': 'application/json', 'content-encoding': 'gzip' }));
      assert.equal(viaGzip.json.label, labels[2]);
      const utf16 = Buffer.from(`\ufeff${body}`, 'utf16le');
      const viaUtf16 = ok(await post('/v1/classify', utf16, { 'content-type': 'application/json; charset=utf-16' }));
      assert.equal(viaUtf16.json.label, labels[2]);
      const latin = await post('/v1/classify', body, { 'content-type': 'application/json; charset=latin1' });
      refused(latin, 415, 'UNSUPPORTED_MEDIA_TYPE', /unsupported charset "LATIN1"/);
    });

    it('reads a pixel array written any way JSON allows, with the same answer', async () => {
      const a = ok(await postJson('/v1/classify', { pixels: Array.from(pixels[3]) }));
      const spaced = `\ufeff {\n  "pixels" : [ ${Array.from(pixels[3]).join(' ,\n ')} ] \n}`;
      const fractional = `{"pixels":[${Array.from(pixels[3], (p) => `${p}.0`).join(',')}]}`;
      const exponent = `{"pixels":[${Array.from(pixels[3], (p) => (p === 0 ? '0e0' : String(p))).join(',')}]}`;
      for (const text of [spaced, fractional, exponent]) {
        const b = ok(await post('/v1/classify', text, { 'content-type': 'application/json; charset=utf-8' }));
        assert.deepStrictEqual(b.json.top, a.json.top);
      }
      refused(
        await post('/v1/classify', `{"pixels":[${'0,'.repeat(783)}256]}`, { 'content-type': 'application/json' }),
        400,
        'INVALID_ARGUMENT',
        /pixels\[783\] must be a number in 0\.\.255, got 256/,
      );
      refused(
        await post('/v1/classify', '{"pixels":[0,]}', { 'content-type': 'application/json' }),
        400,
        'INVALID_ARGUMENT',
        /^request body is not valid JSON$/,
      );
    });
  });
});
