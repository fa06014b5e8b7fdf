import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { loadManifest } from '../../src/models/manifest';
import { LoadedModel, softmaxRows } from '../../src/models/model';
import { OnnxRuntimeFactory } from '../../src/models/onnx-runtime';
import { TfjsEnvironment, TfjsRuntimeFactory } from '../../src/models/tfjs-runtime';
import { argmax, BASELINE, fixtureBytes, fixtureImages, pytorchReference } from '../helpers';

async function fixtureBatch(model: LoadedModel, n: number) {
  const images = fixtureImages().slice(0, n);
  const input = new Float32Array(n * model.pixelsPerImage);
  for (const [j, img] of images.entries()) {
    const { data } = await sharp(fixtureBytes(img.file)).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    model.normalizeInto(data, input, j);
  }
  return { images, input };
}

describe('softmaxRows', () => {
  it('applies the temperature and sums to one per row', () => {
    const p = softmaxRows(new Float32Array([0, Math.log(3), 5, 5]), 2, 1);
    assert.ok(Math.abs(p[0] - 0.25) < 1e-7 && Math.abs(p[1] - 0.75) < 1e-7);
    assert.ok(Math.abs(p[2] - 0.5) < 1e-7);
    const hot = softmaxRows(new Float32Array([0, Math.log(3)]), 2, 0.5); // logits doubled: 1:9
    assert.ok(Math.abs(hot[1] - 0.9) < 1e-6);
  });
});

for (const format of ['onnx', 'tfjs'] as const) {
  describe(`${format} runtime on the shipped baseline`, () => {
    let model: LoadedModel;
    before(async () => {
      const manifest = await loadManifest(BASELINE);
      const factory =
        format === 'onnx' ? new OnnxRuntimeFactory({ intraOpThreads: 1 }) : new TfjsRuntimeFactory(await TfjsEnvironment.create());
      model = new LoadedModel(manifest, await factory.load(BASELINE, manifest), BASELINE);
    });
    after(async () => model.runtime.dispose());

    it('reports its backend', () => {
      assert.match(model.runtime.backend, format === 'onnx' ? /onnxruntime-node/ : /tfjs/);
    });

    it('matches the PyTorch probabilities recorded at export within 1e-4', async () => {
      const { images, input } = await fixtureBatch(model, 32);
      const probs = await model.predict(input, images.length);
      const ref = pytorchReference(BASELINE);
      images.forEach((img, j) => {
        const expected = ref.get(img.testIndex)!;
        const row = probs.subarray(j * 10, (j + 1) * 10);
        assert.equal(argmax(row), argmax(expected));
        for (let c = 0; c < 10; c++) assert.ok(Math.abs(row[c] - expected[c]) < 1e-4, `${img.file} class ${c}`);
      });
    });

    it('gives the same answer for an image alone and inside a batch', async () => {
      const { input } = await fixtureBatch(model, 8);
      const batch = await model.predict(input, 8);
      const alone = await model.predict(input.slice(3 * 784, 4 * 784), 1);
      for (let c = 0; c < 10; c++) assert.ok(Math.abs(alone[c] - batch[30 + c]) < 1e-5);
    });
  });
}
