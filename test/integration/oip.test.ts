/**
 * Open Inference Protocol v2, REST and gRPC, with requests shaped as the
 * protocol's own examples: metadata, readiness, and inference with each
 * input form (FP32 normalized, UINT8 pixels, BYTES files), `contents` and
 * `raw_input_contents`, requested outputs, and the error answers.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import request from 'supertest';
import { joinLengthPrefixed } from '../../src/transport/oip/codec';
import { call, clients, type Clients, failure } from '../grpc-clients';
import {
  argmax,
  BASELINE,
  BASELINE_VERSION,
  fixtureBytes,
  fixtureImages,
  pytorchReference,
  shippedVersions,
  startService,
} from '../helpers';

const fixtures = fixtureImages().slice(0, 6);
const manifest = JSON.parse(readFileSync(path.join(BASELINE, 'manifest.json'), 'utf8'));
const { mean, std } = manifest.input.normalization;
const reference = pytorchReference(BASELINE);
const expectedTop1 = fixtures.map((f) => argmax(reference.get(f.testIndex)!));

async function rawPixels(file: string): Promise<number[]> {
  return Array.from(await sharp(fixtureBytes(file)).greyscale().raw().toBuffer());
}

describe('Open Inference Protocol v2', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  let api: ReturnType<typeof request>;
  let c: Clients;
  let pixels: number[][];

  before(async () => {
    service = await startService();
    api = request(`http://127.0.0.1:${service.port}`);
    c = clients(service.grpcPort);
    pixels = await Promise.all(fixtures.map((f) => rawPixels(f.file)));
  });
  after(async () => {
    c.close();
    await service.stop();
  });

  describe('REST', () => {
    it('answers server metadata, liveness and readiness', async () => {
      const meta = await api.get('/v2').expect(200);
      assert.equal(meta.body.name, 'product-classifier');
      assert.match(meta.body.version, /^\d+\.\d+\.\d+/);
      assert.deepEqual(meta.body.extensions, ['binary_tensor_data']);
      assert.deepEqual((await api.get('/v2/health/live').expect(200)).body, { live: true });
      assert.deepEqual((await api.get('/v2/health/ready').expect(200)).body, { ready: true });
    });

    it('describes the model tensors and readiness', async () => {
      for (const url of ['/v2/models/baseline', '/v2/models/baseline/versions/1']) {
        const res = await api.get(url).expect(200);
        assert.equal(res.body.name, 'baseline');
        assert.deepEqual(res.body.versions, shippedVersions('baseline'));
        assert.equal(res.body.platform, 'onnxruntime_onnx');
        assert.deepEqual(res.body.inputs, [
          { name: 'input', datatype: 'FP32', shape: [-1, 1, 28, 28] },
          { name: 'pixels', datatype: 'UINT8', shape: [-1, 28, 28] },
          { name: 'image', datatype: 'BYTES', shape: [-1] },
        ]);
        assert.deepEqual(
          res.body.outputs.map((o: { name: string }) => o.name),
          ['probabilities', 'label_index', 'label', 'prediction_id', 'ood_score', 'abstained'],
        );
        assert.deepEqual(res.body.outputs[0], { name: 'probabilities', datatype: 'FP32', shape: [-1, 10] });
      }
      assert.deepEqual((await api.get('/v2/models/baseline/ready').expect(200)).body, { name: 'baseline', ready: true });
      assert.deepEqual((await api.get('/v2/models/baseline/versions/1/ready').expect(200)).body, { name: 'baseline', ready: true });
      assert.equal((await api.get('/v2/models/nope/ready')).status, 400);
      const missing = await api.get('/v2/models/nope').expect(404);
      assert.match(missing.body.error, /unknown model "nope"/);
      const noVersion = await api.get('/v2/models/baseline/versions/7').expect(404);
      assert.equal(typeof noVersion.body.error, 'string');
    });

    it('infers from UINT8 pixels as in the protocol example, echoing the id', async () => {
      const res = await api
        .post('/v2/models/baseline/infer')
        .send({ id: '42', inputs: [{ name: 'pixels', shape: [fixtures.length, 28, 28], datatype: 'UINT8', data: pixels.flat() }] })
        .expect(200);
      assert.equal(res.body.model_name, 'baseline');
      assert.equal(res.body.model_version, BASELINE_VERSION);
      assert.equal(res.body.id, '42');
      const byName = Object.fromEntries(res.body.outputs.map((o: { name: string }) => [o.name, o]));
      assert.deepEqual(byName.probabilities.shape, [fixtures.length, 10]);
      assert.equal(byName.probabilities.datatype, 'FP32');
      assert.deepEqual(byName.label_index.data, expectedTop1);
      assert.deepEqual(
        byName.label.data,
        expectedTop1.map((k) => manifest.labels[k]),
      );
      for (let i = 0; i < fixtures.length; i++) {
        const row = byName.probabilities.data.slice(i * 10, i * 10 + 10);
        const ref = reference.get(fixtures[i].testIndex)!;
        row.forEach((p: number, k: number) => assert.ok(Math.abs(p - ref[k]) < 1e-4, `image ${i} class ${k}: ${p} vs PyTorch ${ref[k]}`));
      }
      // prediction ids from OIP are receipts the feedback route accepts
      const fb = await api
        .post('/v1/feedback')
        .send({ predictionId: byName.prediction_id.data[0], labelIndex: fixtures[0].labelIndex })
        .expect(200);
      assert.equal(fb.body.accepted, true);
    });

    it('infers from FP32 normalized tensors given nested, and from base64 image files', async () => {
      const nested = pixels.map((img) => [
        Array.from({ length: 28 }, (_, r) => img.slice(r * 28, r * 28 + 28).map((p) => (p / 255 - mean) / std)),
      ]);
      const fp32 = await api
        .post('/v2/models/baseline/versions/1/infer')
        .send({
          inputs: [{ name: 'input', shape: [fixtures.length, 1, 28, 28], datatype: 'FP32', data: nested }],
          outputs: [{ name: 'label_index' }],
        })
        .expect(200);
      assert.equal(fp32.body.id, undefined);
      assert.deepEqual(fp32.body.outputs, [{ name: 'label_index', datatype: 'INT64', shape: [fixtures.length], data: expectedTop1 }]);
      const files = await api
        .post('/v2/models/baseline/infer')
        .send({
          inputs: [
            {
              name: 'image',
              shape: [2],
              datatype: 'BYTES',
              data: fixtures.slice(0, 2).map((f) => fixtureBytes(f.file).toString('base64')),
            },
          ],
          outputs: [{ name: 'label' }, { name: 'label_index' }],
        })
        .expect(200);
      assert.deepEqual(
        files.body.outputs.map((o: { name: string }) => o.name),
        ['label', 'label_index'],
      );
      assert.deepEqual(files.body.outputs[1].data, expectedTop1.slice(0, 2));
    });

    it('answers bad requests with {"error": message} and the right status', async () => {
      const bad = async (body: unknown, status: number, pattern: RegExp, url = '/v2/models/baseline/infer') => {
        const res = await api.post(url).send(body as object);
        assert.equal(res.status, status, JSON.stringify(res.body));
        assert.equal(typeof res.body.error, 'string');
        assert.match(res.body.error, pattern);
      };
      const px = { name: 'pixels', shape: [1, 28, 28], datatype: 'UINT8', data: pixels[0] };
      await bad({ inputs: [{ ...px, name: 'input0' }] }, 400, /unknown input "input0"/);
      await bad({ inputs: [{ ...px, datatype: 'FP32' }] }, 400, /datatype UINT8/);
      await bad({ inputs: [{ ...px, shape: [2, 28, 28] }] }, 400, /784 values|needs 1568/);
      await bad({ inputs: [{ ...px, shape: [1, 27, 29] }] }, 400, /shape/);
      await bad({ inputs: [{ ...px, data: pixels[0].map(() => 300) }] }, 400, /0\.\.255/);
      await bad({ inputs: [px, px] }, 400, /exactly one input/);
      await bad({ inputs: [px], outputs: [{ name: 'logits' }] }, 400, /unknown output "logits"/);
      await bad({ inputs: 'x' }, 400, /inputs must be an array/);
      await bad({ inputs: [px] }, 404, /unknown model "nope"/, '/v2/models/nope/infer');
      await bad(
        { inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: ['bm90IGFuIGltYWdl'] }] },
        415,
        /image 0: the file is text/,
      );
      const malformed = await api.post('/v2/models/baseline/infer').set('content-type', 'application/json').send('{"inputs": [');
      assert.equal(malformed.status, 400);
      assert.equal(typeof malformed.body.error, 'string');
    });
  });

  describe('gRPC inference.GRPCInferenceService', () => {
    it('answers liveness, readiness and metadata', async () => {
      assert.deepEqual(await call(c.oip, 'ServerLive', {}), { live: true });
      assert.deepEqual(await call(c.oip, 'ServerReady', {}), { ready: true });
      assert.deepEqual(await call(c.oip, 'ModelReady', { name: 'baseline', version: '' }), { ready: true });
      assert.deepEqual(await call(c.oip, 'ModelReady', { name: 'nope', version: '' }), { ready: false });
      const server = await call(c.oip, 'ServerMetadata', {});
      assert.equal(server.name, 'product-classifier');
      const meta = await call(c.oip, 'ModelMetadata', { name: 'baseline', version: '1' });
      assert.equal(meta.platform, 'onnxruntime_onnx');
      assert.deepEqual(meta.inputs[0], { name: 'input', datatype: 'FP32', shape: [-1, 1, 28, 28] });
      const missing = await failure(call(c.oip, 'ModelMetadata', { name: 'nope' }));
      assert.equal(missing.code, grpc.status.NOT_FOUND);
    });

    it('infers from typed contents: FP32, UINT8 and BYTES', async () => {
      const fp32 = await call(c.oip, 'ModelInfer', {
        model_name: 'baseline',
        id: 'req-1',
        inputs: [
          {
            name: 'input',
            datatype: 'FP32',
            shape: [fixtures.length, 1, 28, 28],
            contents: { fp32_contents: pixels.flat().map((p) => (p / 255 - mean) / std) },
          },
        ],
      });
      assert.equal(fp32.id, 'req-1');
      assert.equal(fp32.model_version, BASELINE_VERSION);
      const out = Object.fromEntries(fp32.outputs.map((o: { name: string }) => [o.name, o]));
      assert.deepEqual(out.label_index.contents.int64_contents, expectedTop1);
      assert.deepEqual(out.probabilities.shape, [fixtures.length, 10]);
      assert.equal(out.probabilities.contents.fp32_contents.length, fixtures.length * 10);
      assert.deepEqual(fp32.raw_output_contents, []);
      const u8 = await call(c.oip, 'ModelInfer', {
        model_name: 'baseline',
        inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [fixtures.length, 784], contents: { uint_contents: pixels.flat() } }],
        outputs: [{ name: 'label' }],
      });
      assert.deepEqual(
        u8.outputs[0].contents.bytes_contents.map((b: Buffer) => b.toString()),
        expectedTop1.map((k) => manifest.labels[k]),
      );
      const files = await call(c.oip, 'ModelInfer', {
        model_name: 'baseline',
        inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [fixtureBytes(fixtures[0].file)] } }],
        outputs: [{ name: 'label_index' }],
      });
      assert.deepEqual(files.outputs[0].contents.int64_contents, [expectedTop1[0]]);
    });

    it('infers from raw_input_contents and answers in raw_output_contents', async () => {
      const fp = Buffer.alloc(fixtures.length * 784 * 4);
      pixels.flat().forEach((p, i) => fp.writeFloatLE((p / 255 - mean) / std, i * 4));
      const res = await call(c.oip, 'ModelInfer', {
        model_name: 'baseline',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [fixtures.length, 1, 28, 28] }],
        outputs: [{ name: 'probabilities' }, { name: 'label_index' }],
        raw_input_contents: [fp],
      });
      assert.equal(res.outputs[0].contents, null);
      const [probs, idx] = res.raw_output_contents as Buffer[];
      assert.equal(probs.length, fixtures.length * 10 * 4);
      for (let i = 0; i < fixtures.length; i++) {
        const row = Array.from({ length: 10 }, (_, k) => probs.readFloatLE((i * 10 + k) * 4));
        assert.equal(argmax(row), expectedTop1[i]);
        assert.equal(Number(idx.readBigInt64LE(i * 8)), expectedTop1[i]);
      }
      const u8 = await call(c.oip, 'ModelInfer', {
        model_name: 'baseline',
        inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [fixtures.length, 28, 28] }],
        outputs: [{ name: 'label' }],
        raw_input_contents: [Buffer.from(pixels.flat())],
      });
      const labels: string[] = [];
      const raw = u8.raw_output_contents[0] as Buffer;
      for (let off = 0; off < raw.length;) {
        const len = raw.readUInt32LE(off);
        labels.push(raw.subarray(off + 4, off + 4 + len).toString());
        off += 4 + len;
      }
      assert.deepEqual(
        labels,
        expectedTop1.map((k) => manifest.labels[k]),
      );
      const files = await call(c.oip, 'ModelInfer', {
        model_name: 'baseline',
        inputs: [{ name: 'image', datatype: 'BYTES', shape: [2] }],
        outputs: [{ name: 'label_index' }],
        raw_input_contents: [joinLengthPrefixed(fixtures.slice(0, 2).map((f) => fixtureBytes(f.file)))],
      });
      const fidx = files.raw_output_contents[0] as Buffer;
      assert.deepEqual([Number(fidx.readBigInt64LE(0)), Number(fidx.readBigInt64LE(8))], expectedTop1.slice(0, 2));
    });

    it('maps bad requests onto status codes', async () => {
      const px = { name: 'pixels', datatype: 'UINT8', shape: [1, 28, 28] };
      const both = await failure(
        call(c.oip, 'ModelInfer', {
          model_name: 'baseline',
          inputs: [{ ...px, contents: { uint_contents: pixels[0] } }],
          raw_input_contents: [Buffer.from(pixels[0])],
        }),
      );
      assert.equal(both.code, grpc.status.INVALID_ARGUMENT);
      assert.match(both.details, /raw_input_contents/);
      const short = await failure(
        call(c.oip, 'ModelInfer', { model_name: 'baseline', inputs: [px], raw_input_contents: [Buffer.alloc(100)] }),
      );
      assert.equal(short.code, grpc.status.INVALID_ARGUMENT);
      const noModel = await failure(
        call(c.oip, 'ModelInfer', { model_name: 'nope', inputs: [{ ...px, contents: { uint_contents: pixels[0] } }] }),
      );
      assert.equal(noModel.code, grpc.status.NOT_FOUND);
      const noName = await failure(call(c.oip, 'ModelInfer', { inputs: [] }));
      assert.equal(noName.code, grpc.status.INVALID_ARGUMENT);
      const int32 = await failure(
        call(c.oip, 'ModelInfer', {
          model_name: 'baseline',
          inputs: [{ ...px, datatype: 'INT32', contents: { int_contents: pixels[0] } }],
        }),
      );
      assert.equal(int32.code, grpc.status.INVALID_ARGUMENT);
      assert.match(int32.details, /FP32, UINT8 or BYTES/);
    });
  });
});
