/**
 * Parity check: ONNX Runtime and TF.js, loaded as the service loads them,
 * against the PyTorch probabilities recorded at export time
 * (parity/reference.json in the artifact): same top-1 on every image and
 * probabilities within a tolerance (default 1e-4).
 *
 *   npm run parity -- models/baseline/1 [--tolerance 1e-4]
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ModelFormat } from '../models/manifest';
import { argmax, loadArtifact, predictMany, runtimeFactory } from './artifact';
import { readTestSet } from './fashion-mnist';

export interface ParityResult {
  format: ModelFormat;
  backend: string;
  images: number;
  top1Mismatches: number;
  maxAbsDiff: number;
  ok: boolean;
}

export async function checkParity(dir: string, tolerance = 1e-4, formats: ModelFormat[] = ['onnx', 'tfjs']): Promise<ParityResult[]> {
  const ref = JSON.parse(await readFile(path.join(dir, 'parity', 'reference.json'), 'utf8')) as {
    indices: number[];
    probabilities: number[][];
  };
  const { images } = readTestSet();
  const results: ParityResult[] = [];
  for (const format of formats) {
    const model = await loadArtifact(dir, await runtimeFactory(format));
    try {
      const k = model.numClasses;
      const probs = await predictMany(model, images.pixels, ref.indices);
      let mismatches = 0;
      let maxAbsDiff = 0;
      ref.probabilities.forEach((row, i) => {
        if (argmax(probs, i * k, k) !== argmax(row, 0, k)) mismatches++;
        for (let c = 0; c < k; c++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(probs[i * k + c] - row[c]));
      });
      results.push({
        format,
        backend: model.runtime.backend,
        images: ref.indices.length,
        top1Mismatches: mismatches,
        maxAbsDiff,
        ok: mismatches === 0 && maxAbsDiff <= tolerance,
      });
    } finally {
      await model.runtime.dispose();
    }
  }
  return results;
}

async function main(argv: string[]): Promise<void> {
  const dir = argv.find((a) => !a.startsWith('--') && !/^[0-9.e-]+$/.test(a));
  const tol = argv.includes('--tolerance') ? Number(argv[argv.indexOf('--tolerance') + 1]) : 1e-4;
  if (!dir || !(tol > 0)) {
    console.error('usage: parity <artifact-dir> [--tolerance 1e-4]');
    process.exit(2);
  }
  const results = await checkParity(dir, tol);
  for (const r of results) {
    console.log(
      `${r.ok ? 'PASS' : 'FAIL'} ${r.format.padEnd(4)} ${r.backend}: ${r.images} images, top-1 mismatches ${r.top1Mismatches}, max |dp| ${r.maxAbsDiff.toExponential(2)} (tolerance ${tol})`,
    );
  }
  console.log(JSON.stringify({ artifact: dir, tolerance: tol, results }));
  if (!results.every((r) => r.ok)) process.exit(1);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(`parity: ${(err as Error).message}`);
    process.exit(1);
  });
}
