/**
 * Evaluate a model artifact on the official Fashion-MNIST test set through
 * the serving runtime, exactly as the service would run it.
 *
 *   npm run evaluate -- models/baseline/1 [--runtime onnx|tfjs] [--json]
 */
import { expectedCalibrationError } from '../monitoring/calibration';
import type { ModelFormat } from '../models/manifest';
import { argmax, loadArtifact, predictMany, runtimeFactory } from './artifact';
import { readTestSet } from './fashion-mnist';

export interface Evaluation {
  artifact: string;
  runtime: string;
  samples: number;
  accuracy: number;
  perClassAccuracy: Record<string, number>;
  confusionMatrix: number[][];
  ece: number;
  manifestAccuracy?: number;
  parameters: number;
  macsPerImage?: number;
}

export async function evaluate(dir: string, format: ModelFormat): Promise<Evaluation> {
  const model = await loadArtifact(dir, await runtimeFactory(format));
  try {
    const sha = (model.manifest.training?.dataset as { sha256?: Record<string, string> } | undefined)?.sha256;
    const { images, labels } = readTestSet(undefined, sha);
    const k = model.numClasses;
    const probs = await predictMany(
      model,
      images.pixels,
      Array.from({ length: images.count }, (_, i) => i),
    );
    const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
    const conf = new Float64Array(images.count);
    const correct = new Array<boolean>(images.count);
    let right = 0;
    for (let i = 0; i < images.count; i++) {
      const p = argmax(probs, i * k, k);
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
      samples: images.count,
      accuracy: right / images.count,
      perClassAccuracy,
      confusionMatrix: confusion,
      ece: expectedCalibrationError(conf, correct),
      manifestAccuracy: model.manifest.evaluation?.accuracy,
      parameters: model.manifest.parameters,
      macsPerImage: model.manifest.macsPerImage,
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
  const dir = argv.find((a) => !a.startsWith('--'));
  const runtimeArg = argv.includes('--runtime') ? argv[argv.indexOf('--runtime') + 1] : 'onnx';
  if (!dir || (runtimeArg !== 'onnx' && runtimeArg !== 'tfjs')) {
    console.error('usage: evaluate <artifact-dir> [--runtime onnx|tfjs] [--json]');
    process.exit(2);
  }
  const result = await evaluate(dir, runtimeArg);
  if (argv.includes('--json')) console.log(JSON.stringify(result));
  else printTable(result);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(`evaluate: ${(err as Error).message}`);
    process.exit(1);
  });
}
