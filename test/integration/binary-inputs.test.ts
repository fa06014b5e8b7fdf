/**
 * Binary inputs over real sockets: the Open Inference Protocol's binary
 * tensor data extension on REST (a JSON inference header, then the tensor
 * bytes, `Inference-Header-Content-Length` saying where the JSON ends;
 * binary outputs on request) and raw uint8 pixels on /v1/classify and
 * /v1/classify/batch (application/octet-stream). Each answers as the JSON
 * form of the same request does, for the committed fixture images; every
 * malformed body gets its 400 (or 413) with a message that says what is
 * wrong. Every answer is also checked against api/openapi.json.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { BASELINE, fixtureBytes, fixtureImages, startService } from '../helpers';

const fixtures = fixtureImages().slice(0, 6);
const manifest = JSON.parse(readFileSync(path.join(BASELINE, 'manifest.json'), 'utf8'));
const { mean, std } = manifest.input.normalization;
const MAX_JSON_BYTES = 100_000;
const MAX_IMAGES = 16;

interface Answer {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json?: any;
}

/** An OIP REST body with binary tensor data: the JSON header's bytes, then the tensors'. */
function binaryBody(header: object, ...data: Buffer[]): { body: Buffer; length: number } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...data]), length: json.length };
}

/** An answer with binary outputs: its JSON header and each binary output's bytes by name. */
function splitAnswer(a: Answer): { header: any; binary: Map<string, Buffer> } {
  const length = Number(a.headers.get('inference-header-content-length'));
  assert.ok(length > 0 && length <= a.bytes.length, `Inference-Header-Content-Length ${length} of ${a.bytes.length}`);
  const header = JSON.parse(a.bytes.subarray(0, length).toString('utf8'));
  const binary = new Map<string, Buffer>();
  let off = length;
  for (const o of header.outputs) {
    if (o.parameters?.binary_data_size === undefined) continue;
    assert.equal(o.data, undefined, `${o.name} has no data in JSON when it is binary`);
    binary.set(o.name, a.bytes.subarray(off, off + o.parameters.binary_data_size));
    off += o.parameters.binary_data_size;
  }
  assert.equal(off, a.bytes.length, 'the binary outputs use up the body');
  return { header, binary };
}

/** A binary output decoded as its JSON form would carry it. */
function decode(datatype: string, bytes: Buffer): Array<number | string> {
  const out: Array<number | string> = [];
  if (datatype === 'FP32') for (let i = 0; i < bytes.length; i += 4) out.push(bytes.readFloatLE(i));
  else if (datatype === 'INT64') for (let i = 0; i < bytes.length; i += 8) out.push(Number(bytes.readBigInt64LE(i)));
  else {
    for (let off = 0; off < bytes.length;) {
      const len = bytes.readUInt32LE(off);
      out.push(bytes.subarray(off + 4, off + 4 + len).toString('utf8'));
      off += 4 + len;
    }
  }
  return out;
}

function lengthPrefixed(items: Buffer[]): Buffer {
  return Buffer.concat(items.flatMap((b) => [Buffer.from(new Uint32Array([b.length]).buffer), b]));
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
  const oipBinary = (header: object, data: Buffer[], headers: Record<string, string> = {}, url = '/v2/models/baseline/infer') => {
    const { body, length } = binaryBody(header, ...data);
    return post(url, body, { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(length), ...headers });
  };
  const ok = (a: Answer) => {
    assert.equal(a.status, 200, a.bytes.toString().slice(0, 500));
    return a;
  };
  const oipRefused = (a: Answer, status: number, message: RegExp) => {
    assert.equal(a.status, status, a.bytes.toString().slice(0, 500));
    assert.equal(typeof a.json?.error, 'string');
    assert.match(a.json.error, message);
  };
  const refused = (a: Answer, status: number, code: string, message: RegExp) => {
    assert.equal(a.status, status, a.bytes.toString().slice(0, 500));
    assert.equal(a.json?.error?.code, code);
    assert.match(a.json.error.message, message);
  };
  const n = () => fixtures.length;
  const uint8 = (count = n()) => ({ name: 'pixels', shape: [count, 28, 28], datatype: 'UINT8' });

  describe('the OIP binary tensor data extension', () => {
    it('says so in the server metadata', async () => {
      const meta: any = await fetch(`${base}/v2`).then((r) => r.json());
      assert.deepEqual(meta.extensions, ['binary_tensor_data']);
    });

    it('answers UINT8 pixels in binary as it answers them in JSON', async () => {
      const viaJson = ok(
        await postJson('/v2/models/baseline/infer', { id: 'j', inputs: [{ ...uint8(), data: Array.from(Buffer.concat(pixels)) }] }),
      );
      const viaBinary = ok(await oipBinary({ id: 'b', inputs: [{ ...uint8(), parameters: { binary_data_size: n() * 784 } }] }, pixels));
      assert.equal(viaBinary.headers.get('content-type'), 'application/json; charset=utf-8', 'no binary output asked for: a JSON answer');
      assert.equal(viaBinary.headers.get('inference-header-content-length'), null);
      const outputs = (a: Answer) => a.json.outputs.filter((o: { name: string }) => o.name !== 'prediction_id');
      assert.deepStrictEqual(outputs(viaBinary), outputs(viaJson));
      assert.equal(viaBinary.json.id, 'b');
      assert.deepEqual(viaBinary.json.outputs.find((o: { name: string }) => o.name === 'label').data, labels);
    });

    it('answers FP32 normalized tensors in binary as in JSON, on the versioned route too', async () => {
      const values = Array.from(Buffer.concat(pixels), (p) => (p / 255 - mean) / std);
      const fp32 = Buffer.alloc(values.length * 4);
      values.forEach((v, i) => fp32.writeFloatLE(v, i * 4));
      const input = { name: 'input', shape: [n(), 1, 28, 28], datatype: 'FP32' };
      const outputs = [{ name: 'probabilities' }, { name: 'label_index' }, { name: 'ood_score' }];
      const viaJson = ok(await postJson('/v2/models/baseline/infer', { inputs: [{ ...input, data: values }], outputs }));
      for (const url of ['/v2/models/baseline/infer', '/v2/models/baseline/versions/1/infer']) {
        const viaBinary = ok(
          await oipBinary({ inputs: [{ ...input, parameters: { binary_data_size: fp32.length } }], outputs }, [fp32], {}, url),
        );
        assert.deepStrictEqual(viaBinary.json.outputs, viaJson.json.outputs, url);
      }
      // FP32 data at an odd offset of the body (a JSON header of odd length: padded with a space) is read as well.
      const header = JSON.stringify({
        inputs: [{ ...input, shape: [1, 1, 28, 28], parameters: { binary_data_size: 784 * 4 } }],
        outputs: [{ name: 'label_index' }],
      });
      const padded = Buffer.from(header.length % 2 === 0 ? `${header} ` : header);
      const odd = ok(
        await post('/v2/models/baseline/infer', Buffer.concat([padded, fp32.subarray(0, 784 * 4)]), {
          'content-type': 'application/octet-stream',
          'inference-header-content-length': String(padded.length),
        }),
      );
      assert.deepEqual(odd.json.outputs[0].data, [viaJson.json.outputs[1].data[0]]);
    });

    it('takes image files as BYTES in binary, each with its 4-byte length', async () => {
      const files = fixtures.slice(0, 3).map((f) => fixtureBytes(f.file));
      const data = lengthPrefixed(files);
      const a = ok(
        await oipBinary(
          {
            inputs: [{ name: 'image', shape: [3], datatype: 'BYTES', parameters: { binary_data_size: data.length } }],
            outputs: [{ name: 'label' }],
          },
          [data],
        ),
      );
      assert.deepEqual(a.json.outputs[0].data, labels.slice(0, 3));
    });

    it('answers outputs in binary on request, decoding to the numbers and strings of the JSON answer', async () => {
      const inputs = [{ ...uint8(), parameters: { binary_data_size: n() * 784 } }];
      const viaJson = ok(await oipBinary({ inputs }, pixels));
      const byName = new Map<string, any>(viaJson.json.outputs.map((o: { name: string }) => [o.name, o]));
      // Every output binary (binary_data_output), except `label`, which says otherwise for itself.
      const a = ok(
        await oipBinary(
          {
            id: 'bin-1',
            inputs,
            outputs: [...byName.keys()].map((name) => (name === 'label' ? { name, parameters: { binary_data: false } } : { name })),
            parameters: { binary_data_output: true },
          },
          pixels,
        ),
      );
      assert.equal(a.headers.get('content-type'), 'application/octet-stream');
      const { header, binary } = splitAnswer(a);
      assert.equal(header.id, 'bin-1');
      assert.equal(header.model_name, 'baseline');
      for (const o of header.outputs) {
        const expected = byName.get(o.name);
        assert.equal(o.datatype, expected.datatype);
        assert.deepEqual(o.shape, expected.shape);
        if (o.name === 'label') {
          assert.deepEqual(o.data, expected.data, 'label stays JSON');
          continue;
        }
        const values = decode(o.datatype, binary.get(o.name)!);
        if (o.name === 'prediction_id') {
          assert.equal(values.length, n());
          for (const id of values) assert.match(String(id), /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
        } else assert.deepStrictEqual(values, expected.data, o.name);
      }
      // One output asked for in binary, the others in JSON.
      const one = ok(
        await oipBinary(
          { inputs, outputs: [{ name: 'label_index' }, { name: 'probabilities', parameters: { binary_data: true } }] },
          pixels,
        ),
      );
      const split = splitAnswer(one);
      assert.deepEqual(split.header.outputs[0].data, byName.get('label_index').data);
      assert.deepStrictEqual(decode('FP32', split.binary.get('probabilities')!), byName.get('probabilities').data);
      // A prediction id that came back in binary is a receipt the feedback route takes.
      const ids = decode('BYTES', splitAnswer(a).binary.get('prediction_id')!);
      const fb = ok(await postJson('/v1/feedback', { predictionId: ids[0], label: fixtures[0].label }));
      assert.equal(fb.json.accepted, true);
    });

    it('accepts the content types Triton and KServe clients send: octet-stream, none, JSON with the header', async () => {
      const header = { inputs: [{ ...uint8(1), parameters: { binary_data_size: 784 } }], outputs: [{ name: 'label' }] };
      const { body, length } = binaryBody(header, pixels[0]);
      for (const type of ['application/octet-stream', undefined, 'application/json']) {
        const res = await fetch(`${base}/v2/models/baseline/infer`, {
          method: 'POST',
          // fetch sends text/plain for a string body and nothing for a Uint8Array without a type.
          body: new Uint8Array(body),
          headers: { ...(type ? { 'content-type': type } : {}), 'Inference-Header-Content-Length': String(length) },
        });
        const answer: any = await res.json();
        assert.equal(res.status, 200, `${type}: ${JSON.stringify(answer)}`);
        assert.deepEqual(answer.outputs[0].data, [labels[0]]);
      }
      // Without the header, an octet-stream (or untyped) body is all JSON, as Triton reads it.
      const plain = { inputs: [{ ...uint8(1), data: Array.from(pixels[0]) }], outputs: [{ name: 'label' }] };
      for (const type of ['application/octet-stream', undefined]) {
        const res = await fetch(`${base}/v2/models/baseline/infer`, {
          method: 'POST',
          body: new Uint8Array(Buffer.from(JSON.stringify(plain))),
          headers: type ? { 'content-type': type } : {},
        });
        assert.equal(res.status, 200, String(type));
        assert.deepEqual(((await res.json()) as any).outputs[0].data, [labels[0]]);
      }
    });

    it('refuses every malformed binary request with a 400 that says what is wrong', async () => {
      const px = (size = 784) => ({ ...uint8(1), parameters: { binary_data_size: size } });
      const raw = (body: Buffer, header: string, type = 'application/octet-stream') =>
        post('/v2/models/baseline/infer', body, { 'content-type': type, 'inference-header-content-length': header });
      const good = binaryBody({ inputs: [px()] }, pixels[0]);
      oipRefused(
        await raw(good.body, String(good.body.length + 1)),
        400,
        /Inference-Header-Content-Length is \d+ bytes, but the body has only \d+/,
      );
      oipRefused(
        await raw(good.body, 'twelve'),
        400,
        /Inference-Header-Content-Length must be the byte length of the JSON part; got "twelve"/,
      );
      oipRefused(await raw(good.body, '-5'), 400, /Inference-Header-Content-Length must be the byte length/);
      oipRefused(await raw(good.body, '0'), 400, /Inference-Header-Content-Length is 0/);
      oipRefused(await raw(good.body, String(good.length - 1)), 400, /the JSON inference header is not valid JSON/);
      // The sizes must use the binary part up exactly.
      oipRefused(
        await oipBinary({ inputs: [px()] }, [pixels[0], Buffer.alloc(10)]),
        400,
        /794 bytes of binary data after the JSON, but the inputs' binary_data_size add up to 784/,
      );
      oipRefused(
        await oipBinary({ inputs: [px()] }, [pixels[0].subarray(0, 700)]),
        400,
        /binary_data_size is 784 bytes, but 700 bytes of binary data are left for it/,
      );
      oipRefused(
        await oipBinary({ inputs: [px(0)] }, []),
        400,
        /inputs\[0\] binary data is 0 bytes, but shape \[1,28,28\] of UINT8 takes 784/,
      );
      // The size must match shape x datatype.
      oipRefused(
        await oipBinary({ inputs: [px(700)] }, [pixels[0].subarray(0, 700)]),
        400,
        /is 700 bytes, but shape \[1,28,28\] of UINT8 takes 784/,
      );
      oipRefused(
        await oipBinary({ inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', parameters: { binary_data_size: 784 } }] }, [
          pixels[0],
        ]),
        400,
        /is 784 bytes, but shape \[1,1,28,28\] of FP32 takes 3136/,
      );
      oipRefused(
        await oipBinary({ inputs: [{ ...uint8(1), datatype: 'INT32', parameters: { binary_data_size: 3136 } }] }, [Buffer.alloc(3136)]),
        400,
        /datatype INT32 is not accepted; inputs are FP32, UINT8 or BYTES/,
      );
      oipRefused(
        await oipBinary({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: 6 } }] }, [
          Buffer.from([200, 0, 0, 0, 1, 2]),
        ]),
        400,
        /BYTES element of 200 bytes runs past the end/,
      );
      // One way to send the values, and only with the header.
      oipRefused(
        await oipBinary({ inputs: [{ ...px(), data: Array.from(pixels[0]) }] }, [pixels[0]]),
        400,
        /inputs\[0\] has both data and parameters.binary_data_size/,
      );
      oipRefused(
        await post('/v2/models/baseline/infer', Buffer.concat([Buffer.from(JSON.stringify({ inputs: [px()] })), pixels[0]]), {
          'content-type': 'application/octet-stream',
        }),
        400,
        /request body is not valid JSON/,
      );
      oipRefused(
        await postJson('/v2/models/baseline/infer', { inputs: [px()] }),
        400,
        /binary_data_size says its data follows the JSON, but the request has no Inference-Header-Content-Length/,
      );
      for (const size of [-1, 1.5, '784', null]) {
        oipRefused(await oipBinary({ inputs: [px(size as number)] }, [pixels[0]]), 400, /binary_data_size must be a byte count/);
      }
      // The output parameters are JSON booleans.
      const inputs = [px()];
      oipRefused(
        await oipBinary({ inputs, outputs: [{ name: 'label', parameters: { binary_data: 'yes' } }] }, [pixels[0]]),
        400,
        /outputs\[0\].parameters.binary_data must be a JSON boolean/,
      );
      oipRefused(
        await oipBinary({ inputs, outputs: [{ name: 'label', parameters: 3 }] }, [pixels[0]]),
        400,
        /outputs\[0\].parameters must be an object/,
      );
      oipRefused(
        await oipBinary({ inputs, parameters: { binary_data_output: 1 } }, [pixels[0]]),
        400,
        /parameters.binary_data_output must be a JSON boolean/,
      );
      // The JSON path's own rules still hold in the header.
      oipRefused(await oipBinary({ inputs: [{ ...px(), name: 'input0' }] }, [pixels[0]]), 400, /unknown input "input0"/);
      oipRefused(await oipBinary({ inputs, outputs: [{ name: 'logits' }] }, [pixels[0]]), 400, /unknown output "logits"/);
      oipRefused(await oipBinary({ inputs: [{ ...px(), shape: [1, 27, 29] }] }, [pixels[0]]), 400, /shape/);
      // A body over the limit, and a type that is neither.
      oipRefused(
        await oipBinary({ inputs: [px(MAX_JSON_BYTES)] }, [Buffer.alloc(MAX_JSON_BYTES)]),
        413,
        new RegExp(`larger than the limit of ${MAX_JSON_BYTES} bytes`),
      );
      oipRefused(
        await post('/v2/models/baseline/infer', good.body, { 'content-type': 'text/plain' }),
        415,
        /content type text\/plain is not accepted/,
      );
    });
  });

  it('lets a browser on a listed origin read Inference-Header-Content-Length', async () => {
    const cors = await startService({ CORS_ORIGINS: 'https://shop.example' });
    try {
      const { body, length } = binaryBody(
        { inputs: [{ ...uint8(1), parameters: { binary_data_size: 784 } }], parameters: { binary_data_output: true } },
        pixels[0],
      );
      const res = await fetch(`http://127.0.0.1:${cors.port}/v2/models/baseline/infer`, {
        method: 'POST',
        body: new Uint8Array(body),
        headers: {
          origin: 'https://shop.example',
          'content-type': 'application/octet-stream',
          'inference-header-content-length': String(length),
        },
      });
      await res.arrayBuffer();
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), 'https://shop.example');
      assert.match(res.headers.get('access-control-expose-headers') ?? '', /Inference-Header-Content-Length/);
      assert.ok(Number(res.headers.get('inference-header-content-length')) > 0);
    } finally {
      await cors.stop();
    }
  });

  describe('raw uint8 pixels on /v1/classify and /v1/classify/batch', () => {
    const octets = { 'content-type': 'application/octet-stream' };

    it('classifies a raw batch as the JSON batch of the same images, options from the query string', async () => {
      const raw = ok(await post('/v1/classify/batch?topK=2&model=baseline', Buffer.concat(pixels), octets));
      const json = ok(
        await postJson('/v1/classify/batch', { images: pixels.map((p) => ({ pixels: Array.from(p) })), topK: 2, model: 'baseline' }),
      );
      assert.equal(raw.json.results.length, n());
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
