/**
 * A loaded model version: its manifest, its runtime, and the arithmetic the
 * manifest prescribes around the runtime (input normalization, temperature
 * softmax). Nothing here is hard-coded: labels, mean, std and temperature
 * are the manifest's.
 */
import path from 'node:path';
import type { Manifest } from './manifest';
import { OodScorer } from './ood';
import type { InferenceRuntime } from './runtime';

export class LoadedModel {
  readonly pixelsPerImage: number;
  readonly numClasses: number;
  /** The out-of-distribution scorer, when the manifest ships one. */
  readonly ood: OodScorer | undefined;
  private readonly scale: number;
  private readonly shift: number;

  constructor(
    readonly manifest: Manifest,
    readonly runtime: InferenceRuntime,
    readonly dir: string,
  ) {
    const [, c, h, w] = manifest.input.shape;
    this.pixelsPerImage = c * h * w;
    this.numClasses = manifest.labels.length;
    const { mean, std } = manifest.input.normalization;
    // x = (p/255 - mean)/std  ==  p * scale + shift
    this.scale = 1 / (255 * std);
    this.shift = -mean / std;
    this.ood = manifest.ood ? new OodScorer(manifest.ood, { classes: this.numClasses, pixels: this.pixelsPerImage }) : undefined;
  }

  get name(): string {
    return this.manifest.name;
  }

  get version(): string {
    return this.manifest.version;
  }

  /** The 0..255 pixels of image `index` of a normalized batch (the inverse of normalizeInto), rounded and clamped. */
  pixelsOf(input: Float32Array, index: number): Uint8Array {
    const out = new Uint8Array(this.pixelsPerImage);
    const base = index * this.pixelsPerImage;
    for (let i = 0; i < out.length; i++) {
      const v = Math.round((input[base + i] - this.shift) / this.scale);
      out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
    return out;
  }

  /**
   * The absolute path of a file a browser may fetch to run this model
   * itself: `manifest.json`, or a file of the TF.js artifact that the
   * manifest lists with its digest. Anything else: undefined.
   */
  browserFile(file: string): string | undefined {
    if (file === 'manifest.json') return path.join(this.dir, file);
    const tfjs = this.manifest.formats.tfjs;
    if (!tfjs || file.includes('/') || file.includes('\\')) return undefined;
    const listed = path.posix.join(path.posix.dirname(tfjs.path), file);
    return Object.hasOwn(this.manifest.files, listed) ? path.join(this.dir, listed) : undefined;
  }

  /** Write image `index` of a batch buffer from raw 0..255 pixels. */
  normalizeInto(pixels: ArrayLike<number>, out: Float32Array, index: number): void {
    const base = index * this.pixelsPerImage;
    const { scale, shift } = this;
    for (let i = 0; i < this.pixelsPerImage; i++) out[base + i] = pixels[i] * scale + shift;
  }

  /** The runtime's raw outputs (logits, or probabilities for a `probabilities` manifest) for a normalized batch, [n, classes] row-major. */
  async raw(input: Float32Array, batch: number): Promise<Float32Array> {
    const raw = await this.runtime.run(input, batch);
    if (raw.length !== batch * this.numClasses) {
      throw new Error(`${this.name}/${this.version} returned ${raw.length} values for ${batch} images x ${this.numClasses} classes`);
    }
    return raw;
  }

  /** Calibrated class probabilities from raw outputs, as the manifest prescribes. */
  calibrated(raw: Float32Array): Float32Array {
    return this.manifest.output.kind === 'logits'
      ? softmaxRows(raw, this.numClasses, this.manifest.output.temperature)
      : temperProbabilities(raw, this.numClasses, this.manifest.output.temperature);
  }

  /** Calibrated class probabilities for a normalized batch, [n, classes] row-major. */
  async predict(input: Float32Array, batch: number): Promise<Float32Array> {
    return this.calibrated(await this.raw(input, batch));
  }
}

/** Row-wise softmax(logits / T), numerically stable. */
export function softmaxRows(logits: Float32Array, classes: number, temperature: number): Float32Array {
  const out = new Float32Array(logits.length);
  const invT = 1 / temperature;
  for (let r = 0; r < logits.length; r += classes) {
    let max = -Infinity;
    for (let k = 0; k < classes; k++) max = Math.max(max, logits[r + k]);
    let sum = 0;
    for (let k = 0; k < classes; k++) {
      const e = Math.exp((logits[r + k] - max) * invT);
      out[r + k] = e;
      sum += e;
    }
    for (let k = 0; k < classes; k++) out[r + k] /= sum;
  }
  return out;
}

/** A model that outputs probabilities: temperature applies to their logs. */
function temperProbabilities(probs: Float32Array, classes: number, temperature: number): Float32Array {
  if (temperature === 1) return probs;
  const logs = new Float32Array(probs.length);
  for (let i = 0; i < probs.length; i++) logs[i] = Math.log(Math.max(probs[i], 1e-30));
  return softmaxRows(logs, classes, temperature);
}
