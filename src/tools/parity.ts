/**
 * Parity check: ONNX Runtime and TF.js, loaded as the service loads them,
 * against the PyTorch probabilities recorded at export time
 * (parity/reference.json in the artifact): same top-1 on every image and
 * probabilities within a tolerance (default 1e-4).
 *
 *   npm run parity -- models/baseline/1 [--tolerance 1e-4] [--precision int8 [--min-agreement 0.995]]
 *
 * `--precision int8` checks the version's int8 ONNX copy instead (ONNX
 * only): a quantized model cannot match float probabilities to 1e-4, so it
 * passes when its top-1 class agrees with PyTorch's on at least
 * `--min-agreement` of the images; the largest probability difference is
 * reported, not gated.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ModelFormat, Precision } from '../models/manifest';
import { PRECISIONS } from '../core/runtime-settings';
import { argmax, loadArtifact, predictMany, runtimeFactory } from './artifact';
import { commandLine } from './cli';
import { readTestSet } from './fashion-mnist';

export interface ParityResult {
  format: ModelFormat;
  precision: Precision;
  backend: string;
  images: number;
  top1Mismatches: number;
  /** Share of images with PyTorch's top-1 class. */
  top1Agreement: number;
  maxAbsDiff: number;
  ok: boolean;
}

export interface ParityOptions {
  precision?: Precision;
  /** int8: the least top-1 agreement with PyTorch that passes. */
  minAgreement?: number;
}

export const INT8_MIN_AGREEMENT = 0.995;

export async function checkParity(
  dir: string,
  tolerance = 1e-4,
  formats?: ModelFormat[],
  opts: ParityOptions = {},
): Promise<ParityResult[]> {
  const precision = opts.precision ?? 'float32';
  const minAgreement = opts.minAgreement ?? INT8_MIN_AGREEMENT;
  formats ??= precision === 'int8' ? ['onnx'] : ['onnx', 'tfjs'];
  if (precision === 'int8' && formats.some((f) => f !== 'onnx')) throw new Error('only the ONNX format has an int8 copy');
  const ref = JSON.parse(await readFile(path.join(dir, 'parity', 'reference.json'), 'utf8')) as {
    indices: number[];
    probabilities: number[][];
  };
  const { images } = readTestSet();
  const results: ParityResult[] = [];
  for (const format of formats) {
    const model = await loadArtifact(dir, await runtimeFactory(format, 2, precision));
    try {
      const k = model.numClasses;
      const probs = await predictMany(model, images.pixels, ref.indices);
      let mismatches = 0;
      let maxAbsDiff = 0;
      ref.probabilities.forEach((row, i) => {
        if (argmax(probs, i * k, k) !== argmax(row, 0, k)) mismatches++;
        for (let c = 0; c < k; c++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(probs[i * k + c] - row[c]));
      });
      const count = ref.indices.length;
      const top1Agreement = (count - mismatches) / count;
      results.push({
        format,
        precision,
        backend: model.runtime.backend,
        images: count,
        top1Mismatches: mismatches,
        top1Agreement,
        maxAbsDiff,
        ok: precision === 'int8' ? top1Agreement >= minAgreement : mismatches === 0 && maxAbsDiff <= tolerance,
      });
    } finally {
      await model.runtime.dispose();
    }
  }
  return results;
}

async function main(argv: string[]): Promise<void> {
  const cli = commandLine(argv, ['--tolerance', '--precision', '--min-agreement']);
  const dir = cli.positional;
  const tol = Number(cli.option('--tolerance', '1e-4'));
  const precision = cli.option('--precision', 'float32');
  const minAgreement = Number(cli.option('--min-agreement', String(INT8_MIN_AGREEMENT)));
  if (!dir || !(tol > 0) || !(PRECISIONS as readonly string[]).includes(precision) || !(minAgreement > 0 && minAgreement <= 1)) {
    console.error('usage: parity <artifact-dir> [--tolerance 1e-4] [--precision float32|int8] [--min-agreement 0.995]');
    process.exit(2);
  }
  const results = await checkParity(dir, tol, undefined, { precision: precision as Precision, minAgreement });
  for (const r of results) {
    const gate =
      r.precision === 'int8'
        ? `top-1 agreement ${(100 * r.top1Agreement).toFixed(2)}% (at least ${(100 * minAgreement).toFixed(2)}%), max |dp| ${r.maxAbsDiff.toExponential(2)} (not gated)`
        : `max |dp| ${r.maxAbsDiff.toExponential(2)} (tolerance ${tol})`;
    console.log(
      `${r.ok ? 'PASS' : 'FAIL'} ${r.format.padEnd(4)} ${r.backend}: ${r.images} images, top-1 mismatches ${r.top1Mismatches}, ${gate}`,
    );
  }
  console.log(JSON.stringify({ artifact: dir, tolerance: tol, precision, ...(precision === 'int8' ? { minAgreement } : {}), results }));
  if (!results.every((r) => r.ok)) process.exit(1);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(`parity: ${(err as Error).message}`);
    process.exit(1);
  });
}
