/**
 * The out-of-distribution score of one prediction, from what the service
 * has for every image: the 784 pixels the model was given (0..255, after
 * the photo pipeline) and the model's 10 raw logits. Higher means more
 * unusual; above the manifest's threshold the prediction is flagged.
 *
 * The score and every constant come from the model's manifest (`ood`,
 * written by `python3 -m pctrain.ood`, which fits them on the training
 * split and the threshold on the validation split). The components are:
 *   msp       -max softmax(z / T)
 *   maxlogit  -max z
 *   energy    -logsumexp(z)
 *   energyT   -T logsumexp(z / T)
 *   logitMaha Mahalanobis distance of the logits to the nearest class mean
 *   pixGauss  Mahalanobis distance of 13 pixel statistics to their mean
 *   pixClass  ... to the nearest class mean of those statistics
 *   pixPred   ... to the predicted class's mean
 * and a score is one component, or `maxz(a,b,...)` / `sumz(a,b,...)`: the
 * maximum or sum of the components standardized by their training mean
 * and standard deviation. Training code and service compute the same
 * numbers (test/unit/ood.test.ts checks vectors written by the trainer).
 */

import type { OodVerdict } from '../core/types';

export interface GaussianParams {
  center: number[];
  scale: number[];
  means: number[][];
  precision: number[][];
}

/** What a score's parameters must fit: the model's class count and pixels per image. */
export interface OodModelShape {
  classes: number;
  pixels: number;
}

export interface OodBlock {
  score: string;
  threshold: number;
  falseFlagRate: number;
  params: {
    temperature: number;
    logitGaussian?: GaussianParams;
    pixelGaussian?: GaussianParams;
    standardize?: Record<string, { mean: number; std: number }>;
  };
  [k: string]: unknown;
}

export const OOD_COMPONENTS = ['msp', 'maxlogit', 'energy', 'energyT', 'logitMaha', 'pixGauss', 'pixClass', 'pixPred'] as const;
export type OodComponent = (typeof OOD_COMPONENTS)[number];
const PIXEL_COMPONENTS: readonly OodComponent[] = ['pixGauss', 'pixClass', 'pixPred'];

/** A score name: one component, or `maxz(...)` / `sumz(...)` of several. */
export function parseScore(name: string): { op: 'max' | 'sum' | 'one'; parts: OodComponent[] } {
  const m = /^(max|sum)z\(([A-Za-z,]+)\)$/.exec(name);
  const parts = (m ? m[2].split(',') : [name]) as OodComponent[];
  for (const p of parts) if (!OOD_COMPONENTS.includes(p)) throw new Error(`unknown OOD score component "${p}" in "${name}"`);
  return { op: m ? (m[1] as 'max' | 'sum') : 'one', parts };
}

/**
 * Class-conditional means with a shared precision matrix P, over
 * standardized inputs u. The squared distance to mean m_k expands to
 * u'Pu - 2 u'(P m_k) + m_k'P m_k, so P m_k and m_k'P m_k are computed once
 * here and each image costs one quadratic form plus a dot product per class.
 */
class Gaussian {
  private readonly u: Float64Array;
  private readonly pm: Float64Array[];
  private readonly mpm: Float64Array;

  constructor(private readonly p: GaussianParams) {
    const finite = (a: unknown): boolean => Array.isArray(a) && a.every((v) => (Array.isArray(v) ? finite(v) : Number.isFinite(v)));
    if (![p.center, p.scale, p.means, p.precision].every(finite))
      throw new Error('OOD Gaussian parameters must be arrays of finite numbers');
    const d = p.center.length;
    if (
      p.scale.length !== d ||
      p.precision.length !== d ||
      p.precision.some((r) => r.length !== d) ||
      p.means.some((m) => m.length !== d)
    ) {
      throw new Error('OOD Gaussian parameters have inconsistent dimensions');
    }
    this.u = new Float64Array(d);
    this.pm = p.means.map((m) => Float64Array.from(p.precision, (row) => row.reduce((s, v, j) => s + v * m[j], 0)));
    this.mpm = Float64Array.from(p.means, (m, k) => m.reduce((s, v, i) => s + v * this.pm[k][i], 0));
  }

  get dims(): number {
    return this.p.center.length;
  }

  get classes(): number {
    return this.p.means.length;
  }

  /** sqrt of the squared distance to class `only`'s mean, or to the nearest mean. */
  distance(x: ArrayLike<number>, only?: number): number {
    const { center, scale, precision } = this.p;
    const d = center.length;
    const u = this.u;
    for (let i = 0; i < d; i++) u[i] = (x[i] - center[i]) / scale[i];
    let upu = 0;
    for (let i = 0; i < d; i++) {
      const row = precision[i];
      let s = 0;
      for (let j = 0; j < d; j++) s += row[j] * u[j];
      upu += s * u[i];
    }
    let best = Infinity;
    for (let k = only ?? 0; k < (only === undefined ? this.pm.length : only + 1); k++) {
      const pm = this.pm[k];
      let cross = 0;
      for (let i = 0; i < d; i++) cross += u[i] * pm[i];
      const q = upu - 2 * cross + this.mpm[k];
      if (q < best) best = q;
    }
    return Math.sqrt(Math.max(best, 0));
  }
}

export class OodScorer {
  readonly threshold: number;
  readonly falseFlagRate: number;
  private readonly op: 'max' | 'sum' | 'one';
  private readonly parts: OodComponent[];
  private readonly logitGauss?: Gaussian;
  private readonly pixelGauss?: Gaussian;
  private readonly needsPixels: boolean;
  private readonly features = new Float64Array(PIXEL_STATISTICS);

  constructor(
    private readonly block: OodBlock,
    model: OodModelShape,
  ) {
    const { op, parts } = parseScore(block.score);
    this.op = op;
    this.parts = parts;
    this.threshold = block.threshold;
    this.falseFlagRate = block.falseFlagRate;
    if (!(block.params.temperature > 0)) throw new Error('ood.params.temperature must be positive');
    if (parts.includes('logitMaha')) {
      if (!block.params.logitGaussian) throw new Error('ood.params.logitGaussian is needed by logitMaha');
      this.logitGauss = new Gaussian(block.params.logitGaussian);
      if (this.logitGauss.dims !== model.classes || this.logitGauss.classes !== model.classes) {
        throw new Error(`ood.params.logitGaussian must have ${model.classes} dimensions and ${model.classes} class means`);
      }
    }
    this.needsPixels = parts.some((p) => PIXEL_COMPONENTS.includes(p));
    if (this.needsPixels) {
      if (!block.params.pixelGaussian) throw new Error(`ood.params.pixelGaussian is needed by ${block.score}`);
      this.pixelGauss = new Gaussian(block.params.pixelGaussian);
      if (this.pixelGauss.dims !== PIXEL_STATISTICS) throw new Error(`ood.params.pixelGaussian must have ${PIXEL_STATISTICS} dimensions`);
      if (model.pixels !== SIDE * SIDE)
        throw new Error(`the pixel statistics are defined on ${SIDE}x${SIDE} inputs; this model takes ${model.pixels} pixels`);
      const needed = parts.some((p) => p === 'pixClass' || p === 'pixPred') ? model.classes : 1;
      if (this.pixelGauss.classes < needed) throw new Error(`ood.params.pixelGaussian must have ${needed} class mean(s)`);
    }
    if (op !== 'one') {
      for (const p of parts) {
        const s = block.params.standardize?.[p];
        if (!s || !Number.isFinite(s.mean) || !(s.std > 0) || !Number.isFinite(s.std)) {
          throw new Error(`ood.params.standardize.${p} must give a finite mean and a positive std`);
        }
      }
    }
  }

  /** The score for one image: its 784 input pixels (0..255) and its raw logits. */
  score(pixels: ArrayLike<number>, logits: ArrayLike<number>): number {
    if (this.needsPixels) pixelStatistics(pixels, this.features);
    let out = this.op === 'max' ? -Infinity : 0;
    for (const p of this.parts) {
      const v = this.component(p, logits);
      if (this.op === 'one') return v;
      const s = this.block.params.standardize![p];
      const z = (v - s.mean) / s.std;
      out = this.op === 'max' ? Math.max(out, z) : out + z;
    }
    return out;
  }

  verdict(pixels: ArrayLike<number>, logits: ArrayLike<number>): OodVerdict {
    const score = this.score(pixels, logits);
    // A score that cannot be computed (NaN from a degenerate input) is unusual by definition.
    const flagged = !(score <= this.threshold);
    return { score: Number.isFinite(score) ? score : Number.MAX_VALUE, threshold: this.threshold, flagged };
  }

  private component(p: OodComponent, z: ArrayLike<number>): number {
    const T = this.block.params.temperature;
    switch (p) {
      case 'msp': {
        const lse = logSumExp(z, 1 / T);
        return -Math.exp(max(z) / T - lse);
      }
      case 'maxlogit':
        return -max(z);
      case 'energy':
        return -logSumExp(z, 1);
      case 'energyT':
        return -T * logSumExp(z, 1 / T);
      case 'logitMaha':
        return this.logitGauss!.distance(z);
      case 'pixGauss':
        return this.pixelGauss!.distance(this.features, 0);
      case 'pixClass':
        return this.pixelGauss!.distance(this.features);
      case 'pixPred':
        return this.pixelGauss!.distance(this.features, argmax(z));
    }
  }
}

function max(z: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < z.length; i++) if (z[i] > m) m = z[i];
  return m;
}

function argmax(z: ArrayLike<number>): number {
  let k = 0;
  for (let i = 1; i < z.length; i++) if (z[i] > z[k]) k = i;
  return k;
}

/** logsumexp(z * s), stable. */
function logSumExp(z: ArrayLike<number>, s: number): number {
  const m = max(z) * s;
  let sum = 0;
  for (let i = 0; i < z.length; i++) sum += Math.exp(z[i] * s - m);
  return m + Math.log(sum);
}

export const PIXEL_STATISTICS = 13;
const SIDE = 28;
const DARK = 25;
const BRIGHT = 204;

/**
 * The 13 pixel statistics, in the manifest's `pixelFeatures` order: mean,
 * std, fracDark, fracBright, fracLow, fracMid, borderMean, gradient,
 * laplacian, rowsOn, colsOn, centroidOffset, centerMean (the manifest's
 * `pixelFeaturesFormula` defines each).
 */
export function pixelStatistics(px: ArrayLike<number>, out: Float64Array = new Float64Array(PIXEL_STATISTICS)): Float64Array {
  const n = SIDE * SIDE;
  if (px.length !== n) throw new Error(`pixel statistics need ${n} pixels, got ${px.length}`);
  let sum = 0;
  let dark = 0;
  let bright = 0;
  let low = 0;
  let mid = 0;
  let border = 0;
  let center = 0;
  let sy = 0;
  let sx = 0;
  const rowOn = new Uint8Array(SIDE);
  const colOn = new Uint8Array(SIDE);
  for (let r = 0; r < SIDE; r++) {
    for (let c = 0; c < SIDE; c++) {
      const v = px[r * SIDE + c];
      const p = v / 255;
      sum += p;
      if (v <= DARK) dark++;
      else {
        rowOn[r] = 1;
        colOn[c] = 1;
        if (v <= 101) low++;
        else if (v <= 153) mid++;
      }
      if (v > BRIGHT) bright++;
      if (r < 2 || r > 25 || c < 2 || c > 25) border += p;
      if (r >= 7 && r < 21 && c >= 7 && c < 21) center += p;
      sy += p * r;
      sx += p * c;
    }
  }
  const mean = sum / n;
  let varSum = 0;
  for (let i = 0; i < n; i++) {
    const d = px[i] / 255 - mean;
    varSum += d * d;
  }
  let gx = 0;
  let gy = 0;
  for (let r = 0; r < SIDE; r++) {
    for (let c = 0; c < SIDE - 1; c++) gx += Math.abs(px[r * SIDE + c + 1] - px[r * SIDE + c]) / 255;
  }
  for (let r = 0; r < SIDE - 1; r++) {
    for (let c = 0; c < SIDE; c++) gy += Math.abs(px[(r + 1) * SIDE + c] - px[r * SIDE + c]) / 255;
  }
  let lap = 0;
  for (let r = 1; r < SIDE - 1; r++) {
    for (let c = 1; c < SIDE - 1; c++) {
      const i = r * SIDE + c;
      lap += Math.abs(px[i] / 255 - (px[i - SIDE] / 255 + px[i + SIDE] / 255 + px[i - 1] / 255 + px[i + 1] / 255) / 4);
    }
  }
  let rows = 0;
  let cols = 0;
  for (let i = 0; i < SIDE; i++) {
    rows += rowOn[i];
    cols += colOn[i];
  }
  const offset = sum > 0 ? Math.sqrt((sy / sum - 13.5) ** 2 + (sx / sum - 13.5) ** 2) / SIDE : 0;
  out[0] = mean;
  out[1] = Math.sqrt(varSum / n);
  out[2] = dark / n;
  out[3] = bright / n;
  out[4] = low / n;
  out[5] = mid / n;
  out[6] = border / (n - 24 * 24);
  out[7] = (gx / (SIDE * (SIDE - 1)) + gy / (SIDE * (SIDE - 1))) / 2;
  out[8] = lap / ((SIDE - 2) * (SIDE - 2));
  out[9] = rows / SIDE;
  out[10] = cols / SIDE;
  out[11] = offset;
  out[12] = center / (14 * 14);
  return out;
}
