/**
 * The int8 gates (docs/model-artifacts.md#the-int8-copy): every shipped model
 * version with an int8 ONNX copy (formats.onnx.int8) is run on the full
 * official test set at both precisions through onnxruntime-node, as the
 * service runs it. The int8 copy must keep the float32 accuracy within 0.15
 * points and give float32's top-1 class on at least 99.5% of the images, and
 * the manifest must record what is measured here. MODEL_PRECISION=int8 must
 * really serve the int8 file (outputs that differ from float32's, the same
 * answers on the committed fixtures but for float32's own close calls).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { precisionFor } from '../../src/config';
import { loadManifest, type Manifest, type Precision } from '../../src/models/manifest';
import { LoadedModel, softmaxRows } from '../../src/models/model';
import { OnnxRuntimeFactory } from '../../src/models/onnx-runtime';
import { ModelRepository } from '../../src/models/repository';
import { argmax, predictMany } from '../../src/tools/artifact';
import { readTestSet } from '../../src/tools/fashion-mnist';
import { fixtureBytes, fixtureImages, MODELS, silentLog, testConfig } from '../helpers';

const MAX_ACCURACY_LOSS = 0.0015;
const MIN_AGREEMENT = 0.995;
const RECORD_TOLERANCE = 1e-4;
/** On the 300 fixtures: at most 1% may differ, each a close call for float32 (top-2 calibrated probabilities within 0.1). */
const FIXTURE_DISAGREEMENTS = 0.01;
const CLOSE_CALL = 0.1;

/** Shipped versions whose manifest names an int8 copy. */
function int8Versions(): Array<{ name: string; version: string; dir: string }> {
  const found = [];
  for (const name of readdirSync(MODELS, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    for (const version of readdirSync(path.join(MODELS, name.name), { withFileTypes: true }).filter((d) => d.isDirectory())) {
      const dir = path.join(MODELS, name.name, version.name);
      let manifest: { formats?: { onnx?: { int8?: unknown } } };
      try {
        manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
      } catch {
        continue;
      }
      if (manifest.formats?.onnx?.int8) found.push({ name: name.name, version: version.name, dir });
    }
  }
  return found;
}

async function load(dir: string, manifest: Manifest, precision: Precision): Promise<LoadedModel> {
  const factory = new OnnxRuntimeFactory({ intraOpThreads: 2, precision: () => precision });
  return new LoadedModel(manifest, await factory.load(dir, manifest), dir);
}

const versions = int8Versions();

describe('int8 copies of the shipped models', () => {
  it('exist for every shipped model (baseline/1 and dendritic/1)', () => {
    const names = versions.map((v) => `${v.name}/${v.version}`);
    for (const expected of ['baseline/1', 'dendritic/1']) assert.ok(names.includes(expected), `${expected} has no formats.onnx.int8`);
  });
});

for (const { name, version, dir } of versions) {
  describe(`int8 gates: ${name}/${version} on the 10,000 test images`, () => {
    let manifest: Manifest;
    let measured: { accuracy: number; float32Accuracy: number; agreement: number; samples: number };

    before(async () => {
      manifest = await loadManifest(dir); // checksums: the int8 file is listed in files and verified
      const sha = (manifest.training?.dataset as { sha256?: Record<string, string> } | undefined)?.sha256;
      const { images, labels } = readTestSet(undefined, sha);
      const indices = Array.from({ length: images.count }, (_, i) => i);
      const top1 = new Map<Precision, Uint8Array>();
      for (const precision of ['float32', 'int8'] as const) {
        const model = await load(dir, manifest, precision);
        try {
          const probs = await predictMany(model, images.pixels, indices);
          const k = model.numClasses;
          top1.set(
            precision,
            Uint8Array.from(indices, (i) => argmax(probs, i * k, k)),
          );
        } finally {
          await model.runtime.dispose();
        }
      }
      const f = top1.get('float32')!;
      const q = top1.get('int8')!;
      let floatRight = 0;
      let int8Right = 0;
      let same = 0;
      for (const i of indices) {
        if (f[i] === labels[i]) floatRight++;
        if (q[i] === labels[i]) int8Right++;
        if (f[i] === q[i]) same++;
      }
      const n = images.count;
      measured = { accuracy: int8Right / n, float32Accuracy: floatRight / n, agreement: same / n, samples: n };
    });

    it(`keeps the float32 accuracy within ${MAX_ACCURACY_LOSS * 100} points`, () => {
      assert.ok(
        measured.accuracy >= measured.float32Accuracy - MAX_ACCURACY_LOSS,
        `int8 ${measured.accuracy} against float32 ${measured.float32Accuracy}`,
      );
    });

    it(`gives float32's top-1 class on at least ${MIN_AGREEMENT * 100}% of the images`, () => {
      assert.ok(measured.agreement >= MIN_AGREEMENT, `agreement ${measured.agreement}`);
    });

    it('is recorded in the manifest as measured here', () => {
      const recorded = manifest.formats.onnx?.int8?.evaluation;
      assert.ok(recorded, 'formats.onnx.int8.evaluation is missing: run npm run evaluate -- <dir> --precision int8 --json and record it');
      const where = `measured on ${(recorded.machine as string | undefined) ?? 'an unnamed machine'} when recorded`;
      assert.equal(recorded.samples, measured.samples);
      for (const key of ['accuracy', 'float32Accuracy', 'agreement'] as const) {
        assert.ok(
          Math.abs(recorded[key] - measured[key]) <= RECORD_TOLERANCE,
          `${key}: manifest ${recorded[key]}, measured ${measured[key]} (${where})`,
        );
      }
    });
  });
}

describe('MODEL_PRECISION=int8 serves the int8 files', () => {
  const fixtures = fixtureImages();
  let input: Float32Array;
  const raw = new Map<string, Float32Array>();
  const backends = new Map<string, string>();
  const temperatures = new Map<string, number>();

  async function serve(setting: string | undefined): Promise<void> {
    const config = testConfig(setting === undefined ? {} : { MODEL_PRECISION: setting });
    const factory = new OnnxRuntimeFactory({ intraOpThreads: 1, precision: (m) => precisionFor(config.modelPrecision, m) });
    const repo = new ModelRepository({ dir: MODELS, factory, log: silentLog });
    const report = await repo.reload();
    assert.deepEqual(report.failed, []);
    try {
      for (const name of ['baseline', 'dendritic']) {
        const lease = repo.acquire(name, '1');
        try {
          raw.set(`${setting}:${name}`, await lease.model.raw(input, fixtures.length));
          backends.set(`${setting}:${name}`, lease.model.runtime.backend);
          temperatures.set(name, lease.model.manifest.output.temperature);
        } finally {
          lease.release();
        }
      }
    } finally {
      await repo.close();
    }
  }

  before(async () => {
    const manifest = await loadManifest(path.join(MODELS, 'baseline', '1'));
    const per = manifest.input.shape.slice(1).reduce((a, b) => a * b, 1);
    const model = new LoadedModel(
      manifest,
      { format: 'onnx', backend: 'none', run: async () => new Float32Array(), dispose: async () => {} },
      '',
    );
    input = new Float32Array(fixtures.length * per);
    for (const [j, img] of fixtures.entries()) {
      const { data } = await sharp(fixtureBytes(img.file)).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
      model.normalizeInto(data, input, j);
    }
    for (const setting of [undefined, 'int8', 'int8,dendritic=float32']) await serve(setting);
  });
  after(() => raw.clear());

  for (const name of ['baseline', 'dendritic']) {
    it(`${name}: int8 outputs differ bitwise from float32 and agree with it in top-1 on the fixtures but for close calls`, () => {
      const f = raw.get(`undefined:${name}`)!;
      const q = raw.get(`int8:${name}`)!;
      assert.match(backends.get(`int8:${name}`)!, /int8$/);
      assert.match(backends.get(`undefined:${name}`)!, /float32$/);
      assert.notDeepEqual(Buffer.from(q.buffer, q.byteOffset, q.byteLength), Buffer.from(f.buffer, f.byteOffset, f.byteLength));
      // A disagreement is allowed only where float32 itself hesitates between its two first classes.
      const probs = softmaxRows(f, 10, temperatures.get(name)!);
      const differ: string[] = [];
      for (let j = 0; j < fixtures.length; j++) {
        if (argmax(f, j * 10, 10) === argmax(q, j * 10, 10)) continue;
        const [first, second] = Array.from(probs.subarray(j * 10, (j + 1) * 10)).sort((a, b) => b - a);
        differ.push(`${fixtures[j].file} (float32 top-2 probabilities ${first.toFixed(3)}, ${second.toFixed(3)})`);
        assert.ok(first - second < CLOSE_CALL, `int8 changes a confident float32 answer on ${differ.at(-1)}`);
      }
      assert.ok(differ.length <= FIXTURE_DISAGREEMENTS * fixtures.length, `${differ.length} fixtures differ: ${differ.join('; ')}`);
    });
  }

  it('int8,dendritic=float32 serves the baseline in int8 and the dendritic model in float32', () => {
    const mixed = (name: string) => raw.get(`int8,dendritic=float32:${name}`)!;
    assert.deepEqual(mixed('baseline'), raw.get('int8:baseline'));
    assert.deepEqual(mixed('dendritic'), raw.get('undefined:dendritic'));
  });
});
