/**
 * What the out-of-distribution score costs on the hot path, as a ratio to
 * the model call it rides on, measured in one process: for each shipped
 * model, the time to score an image (13 pixel statistics, a Mahalanobis
 * distance to 10 class means, the softmax part) against the ONNX Runtime
 * call per image, at batch 1 and batch 64, on real test-set fixtures.
 *
 *   npm run build && node dist/bench/ood-cost.js [--rounds 2000]
 *
 * Writes bench/results/ood-cost.json and prints a table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { loadArtifact, runtimeFactory } from '../src/tools/artifact';
import { fixtureBytes, fixtureImages, MODELS } from '../test/helpers';

const ROOT = path.resolve(__dirname, '..', '..');
const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 2000;

async function main(): Promise<void> {
  // One intra-op thread, as the service runs by default (ORT_THREADS=1).
  const factory = await runtimeFactory('onnx', 1);
  const images = await Promise.all(
    fixtureImages()
      .slice(0, 64)
      .map(async (f) => new Uint8Array(await sharp(fixtureBytes(f.file)).toColourspace('b-w').raw().toBuffer())),
  );
  const rows: Record<string, number | string>[] = [];
  for (const name of ['baseline', 'dendritic']) {
    const model = await loadArtifact(path.join(MODELS, name, '1'), factory);
    const scorer = model.ood!;
    for (const batch of [1, 64]) {
      const input = new Float32Array(batch * model.pixelsPerImage);
      for (let j = 0; j < batch; j++) model.normalizeInto(images[j % images.length], input, j);
      const calls = Math.max(20, Math.round(rounds / batch));
      let logits = await model.raw(input, batch); // warm up
      let t = performance.now();
      for (let r = 0; r < calls; r++) logits = await model.raw(input, batch);
      const inferPerImage = (performance.now() - t) / (calls * batch);
      const k = model.numClasses;
      let sink = 0;
      // Warm the scorer up (JIT) before timing it, as the model call was.
      for (let r = 0; r < 200; r++) sink += scorer.score(images[r % images.length], logits.subarray(0, k));
      t = performance.now();
      for (let r = 0; r < calls; r++) {
        for (let j = 0; j < batch; j++) sink += scorer.score(images[j % images.length], logits.subarray(j * k, (j + 1) * k));
      }
      const oodPerImage = (performance.now() - t) / (calls * batch);
      if (!Number.isFinite(sink)) throw new Error('a score was not finite');
      rows.push({
        model: name,
        batch,
        inferenceUsPerImage: Math.round(inferPerImage * 1000 * 10) / 10,
        oodUsPerImage: Math.round(oodPerImage * 1000 * 10) / 10,
        ratio: Math.round((oodPerImage / inferPerImage) * 1000) / 1000,
      });
    }
  }
  const out = path.join(ROOT, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'ood-cost.json'), JSON.stringify({ date: new Date().toISOString(), rounds, rows }, null, 2) + '\n');
  console.log('| model | batch | inference µs/image | OOD score µs/image | OOD / inference |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.model} | ${r.batch} | ${r.inferenceUsPerImage} | ${r.oodUsPerImage} | ${r.ratio} |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
