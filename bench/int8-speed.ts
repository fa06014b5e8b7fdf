/**
 * float32 against int8 (formats.onnx.int8): the ONNX Runtime call per
 * image for each shipped model, at batch 1 and batch 64, one intra-op
 * thread (the service's default ORT_THREADS=1), both sessions in one
 * process. Rounds are interleaved (float32, int8, int8, float32, ...) so
 * that a change in machine load hits both alike; the table gives the
 * median over rounds.
 *
 *   npm run build && npm run bench:int8 -- [--rounds 15] [--images 512]
 *
 * Writes bench/results/int8-speed.json and prints a table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import type { Precision } from '../src/models/manifest';
import type { LoadedModel } from '../src/models/model';
import { loadArtifact, runtimeFactory } from '../src/tools/artifact';
import { fixtureBytes, fixtureImages, MODELS } from '../test/helpers';

const ROOT = path.resolve(__dirname, '..', '..');
const arg = (name: string, fallback: number) =>
  process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback;
const rounds = arg('--rounds', 15);
/** Images timed per round and batch size (at least one call). */
const imagesPerRound = arg('--images', 512);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function msPerImage(model: LoadedModel, input: Float32Array, batch: number): Promise<number> {
  const calls = Math.max(1, Math.round(imagesPerRound / batch));
  const t = performance.now();
  for (let r = 0; r < calls; r++) await model.raw(input, batch);
  return (performance.now() - t) / (calls * batch);
}

async function main(): Promise<void> {
  const images = await Promise.all(
    fixtureImages()
      .slice(0, 64)
      .map(async (f) => new Uint8Array(await sharp(fixtureBytes(f.file)).toColourspace('b-w').raw().toBuffer())),
  );
  const loadBefore = os.loadavg();
  const rows: Record<string, number | number[] | string>[] = [];
  for (const name of ['baseline', 'dendritic']) {
    const dir = path.join(MODELS, name, '1');
    const models = new Map<Precision, LoadedModel>();
    for (const precision of ['float32', 'int8'] as const)
      models.set(precision, await loadArtifact(dir, await runtimeFactory('onnx', 1, precision)));
    for (const batch of [1, 64]) {
      const base = models.get('float32')!;
      const input = new Float32Array(batch * base.pixelsPerImage);
      for (let j = 0; j < batch; j++) base.normalizeInto(images[j % images.length], input, j);
      const times: Record<Precision, number[]> = { float32: [], int8: [] };
      for (const model of models.values()) await msPerImage(model, input, batch); // warm up
      for (let r = 0; r < rounds; r++) {
        const order: Precision[] = r % 2 ? ['int8', 'float32'] : ['float32', 'int8'];
        for (const precision of order) times[precision].push(await msPerImage(models.get(precision)!, input, batch));
      }
      const f = median(times.float32);
      const q = median(times.int8);
      rows.push({
        model: name,
        batch,
        float32MsPerImage: Math.round(f * 1000) / 1000,
        int8MsPerImage: Math.round(q * 1000) / 1000,
        speedup: Math.round((f / q) * 100) / 100,
        float32Rounds: times.float32.map((x) => Math.round(x * 1000) / 1000),
        int8Rounds: times.int8.map((x) => Math.round(x * 1000) / 1000),
      });
    }
    for (const model of models.values()) await model.runtime.dispose();
  }
  const out = path.join(ROOT, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const cpus = os.cpus();
  writeFileSync(
    path.join(out, 'int8-speed.json'),
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine: `${os.arch()}, ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} logical CPU(s)`,
        runtime: (await runtimeFactory('onnx', 1)).backend,
        loadAverage: {
          before: loadBefore.map((x) => Math.round(x * 100) / 100),
          after: os.loadavg().map((x) => Math.round(x * 100) / 100),
        },
        rounds,
        imagesPerRound,
        statistic: 'median over interleaved rounds of ms per image',
        rows,
      },
      null,
      2,
    ) + '\n',
  );
  console.log('| model | batch | float32 ms/image | int8 ms/image | float32 / int8 |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.model} | ${r.batch} | ${r.float32MsPerImage} | ${r.int8MsPerImage} | ${r.speedup} |`);
  console.log(
    `load average before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
