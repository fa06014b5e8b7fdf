/**
 * Evaluate a model artifact on the official Fashion-MNIST test set through
 * the serving runtime, exactly as the service would run it.
 *
 *   npm run evaluate -- models/baseline/1 [--runtime onnx|tfjs] [--precision float32|int8] [--json]
 *
 * With `--precision int8` the version's int8 ONNX copy (formats.onnx.int8)
 * is evaluated, and the float32 model beside it too: the report adds the
 * float32 accuracy and the top-1 agreement of the two on the test set (the
 * int8 gate; `python3 -m pctrain.quantize <dir> --record-evaluation` stores
 * it in the manifest).
 */
import os from 'node:os';
import { expectedCalibrationError } from '../monitoring/calibration';
import type { ModelFormat, Precision } from '../models/manifest';
import type { LoadedModel } from '../models/model';
import { PRECISIONS } from '../core/runtime-settings';
import { argmax, loadArtifact, predictMany, runtimeFactory } from './artifact';
import { commandLine } from './cli';
import { readTestSet } from './fashion-mnist';

export interface Evaluation {
  artifact: string;
  runtime: string;
  precision: Precision;
  samples: number;
  accuracy: number;
  perClassAccuracy: Record<string, number>;
  confusionMatrix: number[][];
  ece: number;
  manifestAccuracy?: number;
  parameters: number;
  macsPerImage?: number;
  /** int8 only: the float32 model's accuracy on the same images, in the same runtime. */
  float32Accuracy?: number;
  /** int8 only: the share of images where int8 and float32 give the same top-1 class. */
  agreement?: number;
  /** int8 only: the sha256 of the int8 file evaluated (as listed in the manifest). */
  int8Sha256?: string;
  /** The CPU the numbers were measured on (int8 kernels depend on its instruction set). */
  machine: string;
}

/** Top-1 class of every image of a uint8 pixel array. */
async function top1(model: LoadedModel, pixels: Uint8Array, count: number): Promise<{ probs: Float32Array; classes: Uint8Array }> {
  const k = model.numClasses;
  const probs = await predictMany(
    model,
    pixels,
    Array.from({ length: count }, (_, i) => i),
  );
  const classes = new Uint8Array(count);
  for (let i = 0; i < count; i++) classes[i] = argmax(probs, i * k, k);
  return { probs, classes };
}

export function machine(): string {
  const cpus = os.cpus();
  return `${os.arch()}, ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} logical CPU(s)`;
}

export async function evaluate(dir: string, format: ModelFormat, precision: Precision = 'float32', threads = 2): Promise<Evaluation> {
  if (precision === 'int8' && format !== 'onnx') throw new Error('--precision int8 needs --runtime onnx');
  const model = await loadArtifact(dir, await runtimeFactory(format, threads, precision));
  try {
    const sha = (model.manifest.training?.dataset as { sha256?: Record<string, string> } | undefined)?.sha256;
    const { images, labels } = readTestSet(undefined, sha);
    const k = model.numClasses;
    const { probs, classes } = await top1(model, images.pixels, images.count);
    let int8: Pick<Evaluation, 'float32Accuracy' | 'agreement' | 'int8Sha256'> = {};
    if (precision === 'int8') {
      const reference = await loadArtifact(dir, await runtimeFactory('onnx', threads, 'float32'));
      try {
        const float = await top1(reference, images.pixels, images.count);
        let same = 0;
        let floatRight = 0;
        for (let i = 0; i < images.count; i++) {
          if (float.classes[i] === classes[i]) same++;
          if (float.classes[i] === labels[i]) floatRight++;
        }
        int8 = {
          float32Accuracy: floatRight / images.count,
          agreement: same / images.count,
          int8Sha256: model.manifest.files[model.manifest.formats.onnx!.int8!.path],
        };
      } finally {
        await reference.runtime.dispose();
      }
    }
    const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
    const conf = new Float64Array(images.count);
    const correct = new Array<boolean>(images.count);
    let right = 0;
    for (let i = 0; i < images.count; i++) {
      const p = classes[i];
      confusion[labels[i]][p]++;
      conf[i] = probs[i * k + p];
      correct[i] = p === labels[i];
      if (correct[i]) right++;
    }
    const perClassAccuracy: Record<string, number> = {};
    model.manifest.labels.forEach((label, c) => {
      const total = confusion[c].reduce((a, b) => a + b, 0);
      perClassAccuracy[label] = total ? confusion[c][c] / total : 0;
    });
    return {
      artifact: dir,
      runtime: model.runtime.backend,
      precision,
      samples: images.count,
      accuracy: right / images.count,
      perClassAccuracy,
      confusionMatrix: confusion,
      ece: expectedCalibrationError(conf, correct),
      manifestAccuracy: model.manifest.evaluation?.accuracy,
      parameters: model.manifest.parameters,
      macsPerImage: model.manifest.macsPerImage,
      ...int8,
      machine: machine(),
    };
  } finally {
    await model.runtime.dispose();
  }
}

function printTable(e: Evaluation): void {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  console.log(`artifact     ${e.artifact}`);
  console.log(`runtime      ${e.runtime}`);
  console.log(`test images  ${e.samples}`);
  console.log(
    `accuracy     ${pct(e.accuracy)}${e.manifestAccuracy !== undefined ? `   (manifest, PyTorch: ${pct(e.manifestAccuracy)})` : ''}`,
  );
  if (e.agreement !== undefined && e.float32Accuracy !== undefined) {
    console.log(
      `float32      ${pct(e.float32Accuracy)}   (same runtime; int8 - float32: ${(100 * (e.accuracy - e.float32Accuracy)).toFixed(2)} points)`,
    );
    console.log(`agreement    ${pct(e.agreement)}   (same top-1 class as float32)`);
  }
  console.log(`ECE (15 bins) ${e.ece.toFixed(4)}`);
  console.log(
    `parameters   ${e.parameters.toLocaleString('en-US')}${e.macsPerImage ? `   MACs/image ${e.macsPerImage.toLocaleString('en-US')}` : ''}`,
  );
  console.log('per class:');
  for (const [label, acc] of Object.entries(e.perClassAccuracy)) console.log(`  ${label.padEnd(12)} ${pct(acc)}`);
  console.log('confusion (rows: true, columns: predicted):');
  for (const row of e.confusionMatrix) console.log('  ' + row.map((v) => String(v).padStart(5)).join(''));
}

async function main(argv: string[]): Promise<void> {
  const cli = commandLine(argv, ['--runtime', '--precision', '--threads']);
  const dir = cli.positional;
  const runtimeArg = cli.option('--runtime', 'onnx');
  const precision = cli.option('--precision', 'float32');
  const threads = Number(cli.option('--threads', '2'));
  if (
    !dir ||
    (runtimeArg !== 'onnx' && runtimeArg !== 'tfjs') ||
    !(PRECISIONS as readonly string[]).includes(precision) ||
    !(Number.isInteger(threads) && threads >= 1)
  ) {
    console.error('usage: evaluate <artifact-dir> [--runtime onnx|tfjs] [--precision float32|int8] [--threads N] [--json]');
    process.exit(2);
  }
  const result = await evaluate(dir, runtimeArg, precision as Precision, threads);
  if (cli.flag('--json')) console.log(JSON.stringify(result));
  else printTable(result);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(`evaluate: ${(err as Error).message}`);
    process.exit(1);
  });
}
