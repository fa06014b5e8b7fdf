/** Shared by the offline tools: load one artifact directory and run many images through it. */
import type { ModelFormat, Precision } from '../models/manifest';
import { loadManifest } from '../models/manifest';
import { LoadedModel } from '../models/model';
import { OnnxRuntimeFactory } from '../models/onnx-runtime';
import type { RuntimeFactory } from '../models/runtime';
import { TfjsEnvironment, TfjsRuntimeFactory } from '../models/tfjs-runtime';

export async function runtimeFactory(format: ModelFormat, threads = 2, precision: Precision = 'float32'): Promise<RuntimeFactory> {
  return format === 'onnx'
    ? new OnnxRuntimeFactory({ intraOpThreads: threads, precision: () => precision })
    : new TfjsRuntimeFactory(await TfjsEnvironment.create());
}

export async function loadArtifact(dir: string, factory: RuntimeFactory): Promise<LoadedModel> {
  const manifest = await loadManifest(dir);
  return new LoadedModel(manifest, await factory.load(dir, manifest), dir);
}

/** Calibrated probabilities for images `indices` of a uint8 pixel array, in batches. */
export async function predictMany(model: LoadedModel, pixels: Uint8Array, indices: number[], batch = 256): Promise<Float32Array> {
  const per = model.pixelsPerImage;
  const out = new Float32Array(indices.length * model.numClasses);
  for (let start = 0; start < indices.length; start += batch) {
    const chunk = indices.slice(start, start + batch);
    const input = new Float32Array(chunk.length * per);
    chunk.forEach((idx, j) => model.normalizeInto(pixels.subarray(idx * per, (idx + 1) * per), input, j));
    out.set(await model.predict(input, chunk.length), start * model.numClasses);
  }
  return out;
}

export function argmax(row: ArrayLike<number>, offset: number, n: number): number {
  let best = 0;
  for (let k = 1; k < n; k++) if (row[offset + k] > row[offset + best]) best = k;
  return best;
}
