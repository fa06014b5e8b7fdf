/**
 * Open Inference Protocol v2: the tensors product-classifier reads and
 * writes, shared by the REST and gRPC forms (each converts its own
 * encoding to and from these plain shapes).
 *
 * Inputs (send exactly one per request; N images):
 *   <manifest input name, "input">  FP32  [N,1,28,28]  already normalized: (pixel/255 - mean)/std
 *   pixels                          UINT8 [N,28,28] (or [N,1,28,28], [N,784])  raw 0..255, white item on black
 *   image                           BYTES [N]  encoded files (PNG, JPEG, ...); the service converts them
 * Outputs (all by default, or those requested):
 *   probabilities  FP32  [N,10]  calibrated
 *   label_index    INT64 [N]
 *   label          BYTES [N]
 *   prediction_id  BYTES [N]     receipts for /v1/feedback
 */
import type { ModelInfo } from '../../core/dataplane';
import { invalid } from '../../core/errors';
import type { Classification, ImageInput } from '../../core/types';

export const PIXELS_INPUT = 'pixels';
export const IMAGE_INPUT = 'image';
/** The largest finite float32. */
const FLOAT32_MAX = 3.4028234663852886e38;

export const OUTPUTS = ['probabilities', 'label_index', 'label', 'prediction_id', 'ood_score', 'abstained'] as const;
export type OutputName = (typeof OUTPUTS)[number];

/** A decoded input tensor: numbers for numeric types, byte strings for BYTES. */
export interface InputTensor {
  name: string;
  datatype: string;
  shape: number[];
  data: ArrayLike<number> | Buffer[];
}

export interface OutputTensor {
  name: OutputName;
  datatype: 'FP32' | 'INT64' | 'BYTES';
  shape: number[];
  data: Float32Array | number[] | string[];
}

export interface TensorMeta {
  name: string;
  datatype: string;
  shape: number[];
}

export function inputMetadata(info: ModelInfo): TensorMeta[] {
  const [, c, h, w] = info.inputShape;
  return [
    { name: info.inputName, datatype: 'FP32', shape: [-1, c, h, w] },
    { name: PIXELS_INPUT, datatype: 'UINT8', shape: [-1, h, w] },
    { name: IMAGE_INPUT, datatype: 'BYTES', shape: [-1] },
  ];
}

export function outputMetadata(info: ModelInfo): TensorMeta[] {
  return [
    { name: 'probabilities', datatype: 'FP32', shape: [-1, info.labels.length] },
    // -1 and "" for an image the service abstained on.
    { name: 'label_index', datatype: 'INT64', shape: [-1] },
    { name: 'label', datatype: 'BYTES', shape: [-1] },
    { name: 'prediction_id', datatype: 'BYTES', shape: [-1] },
    ...(info.ood ? [{ name: 'ood_score', datatype: 'FP32', shape: [-1] }] : []),
    // "out-of-distribution", "low-confidence", or "" when answered.
    { name: 'abstained', datatype: 'BYTES', shape: [-1] },
  ];
}

/** This service's additions to OIP model metadata: the out-of-distribution score's name, threshold and false-flag rate. */
export function metadataParameters(info: ModelInfo): Record<string, string | number> | undefined {
  if (!info.ood) return undefined;
  return { ood_score: info.ood.score, ood_threshold: info.ood.threshold, ood_false_flag_rate: info.ood.falseFlagRate };
}

export function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Check a declared shape: non-negative integers only. */
export function checkShape(shape: unknown, where: string): number[] {
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw invalid(`${where}.shape must be a non-empty list of non-negative integers`);
  }
  return shape as number[];
}

function describeInputs(info: ModelInfo): string {
  return inputMetadata(info)
    .map((t) => `${t.name} (${t.datatype} [${t.shape.join(',')}])`)
    .join(', ');
}

/** The request's images, one per batch row, from its single input tensor. */
export function imagesFrom(inputs: InputTensor[], info: ModelInfo): ImageInput[] {
  if (inputs.length !== 1) throw invalid(`send exactly one input tensor, one of: ${describeInputs(info)}; got ${inputs.length}`);
  const t = inputs[0];
  const where = `input "${t.name}"`;
  const [, c, h, w] = info.inputShape;
  const per = info.pixelsPerImage;
  const n = t.shape[0];
  if (t.name === info.inputName || t.name === PIXELS_INPUT) {
    const fp32 = t.name === info.inputName;
    const want = fp32 ? 'FP32' : 'UINT8';
    if (t.datatype !== want) throw invalid(`${where} must have datatype ${want}; got ${t.datatype}`);
    const shapes = fp32
      ? [[n, c, h, w]]
      : [
          [n, h, w],
          [n, c, h, w],
          [n, per],
        ];
    if (!shapes.some((s) => s.length === t.shape.length && s.every((d, i) => d === t.shape[i]))) {
      throw invalid(
        `${where} must have shape ${shapes.map((s) => `[N,${s.slice(1).join(',')}]`).join(' or ')}; got [${t.shape.join(',')}]`,
      );
    }
    const data = t.data as ArrayLike<number>;
    if (Array.isArray(t.data) && t.data.some((v) => typeof v !== 'number')) throw invalid(`${where} data must be numbers`);
    if (data.length !== n * per) throw invalid(`${where} has ${data.length} values; shape [${t.shape.join(',')}] needs ${n * per}`);
    const rows: ImageInput[] = [];
    for (let i = 0; i < n; i++) {
      const row = slice(data, i * per, (i + 1) * per);
      rows.push(fp32 ? { kind: 'normalized', values: row } : { kind: 'pixels', pixels: row });
    }
    return rows;
  }
  if (t.name === IMAGE_INPUT) {
    if (t.datatype !== 'BYTES') throw invalid(`${where} must have datatype BYTES; got ${t.datatype}`);
    if (t.shape.length !== 1) throw invalid(`${where} must have shape [N]; got [${t.shape.join(',')}]`);
    const items = t.data as Buffer[];
    if (items.length !== n) throw invalid(`${where} has ${items.length} elements; shape [${n}] needs ${n}`);
    return items.map((bytes) => ({ kind: 'encoded', bytes }));
  }
  throw invalid(`unknown input "${t.name}"; this model takes one of: ${describeInputs(info)}`);
}

function slice(data: ArrayLike<number>, start: number, end: number): ArrayLike<number> {
  if (ArrayBuffer.isView(data)) return (data as unknown as Float32Array).subarray(start, end);
  return Array.prototype.slice.call(data, start, end) as number[];
}

/** Which outputs to send: all the model has when none are requested; unknown names are an error. */
export function requestedOutputs(names: string[] | undefined, info: ModelInfo): OutputName[] {
  const available = outputMetadata(info).map((t) => t.name);
  if (!names || names.length === 0) return available as OutputName[];
  for (const n of names) {
    if (!available.includes(n)) throw invalid(`unknown output "${n}"; this model's outputs are: ${available.join(', ')}`);
  }
  return names as OutputName[];
}

export function outputsFrom(results: Classification[], classes: number, wanted: OutputName[]): OutputTensor[] {
  const n = results.length;
  const build: Record<OutputName, () => OutputTensor> = {
    probabilities: () => {
      const probs = new Float32Array(n * classes);
      results.forEach((r, i) => {
        for (const p of r.top) probs[i * classes + p.labelIndex] = p.confidence;
      });
      return { name: 'probabilities', datatype: 'FP32', shape: [n, classes], data: probs };
    },
    label_index: () => ({ name: 'label_index', datatype: 'INT64', shape: [n], data: results.map((r) => r.labelIndex ?? -1) }),
    label: () => ({ name: 'label', datatype: 'BYTES', shape: [n], data: results.map((r) => r.label ?? '') }),
    prediction_id: () => ({ name: 'prediction_id', datatype: 'BYTES', shape: [n], data: results.map((r) => r.predictionId) }),
    // FP32: a score beyond float32's range (the stand-in for one that could not be computed) is clamped, not Infinity.
    ood_score: () => ({
      name: 'ood_score',
      datatype: 'FP32',
      shape: [n],
      data: Float32Array.from(results, (r) => Math.min(r.ood?.score ?? NaN, FLOAT32_MAX)),
    }),
    abstained: () => ({ name: 'abstained', datatype: 'BYTES', shape: [n], data: results.map((r) => r.abstained ?? '') }),
  };
  return wanted.map((name) => build[name]());
}
