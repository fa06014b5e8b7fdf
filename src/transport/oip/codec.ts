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

/** The tensor data JSON carries (`data`, flattened row-major): numbers, or for BYTES one element per item, decoded by `element`. */
export function tensorFromJson(
  flat: unknown[],
  datatype: string,
  where: string,
  element: (value: unknown, where: string) => Buffer,
): ArrayLike<number> | Buffer[] {
  if (datatype === 'BYTES') return flat.map((v, j) => element(v, `${where}.data[${j}]`));
  if (!flat.every((v) => typeof v === 'number' && Number.isFinite(v)))
    throw invalid(`${where}.data must hold finite numbers for ${datatype}`);
  if (datatype === 'UINT8' && !flat.every((v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255)) {
    throw invalid(`${where}.data must hold integers 0..255 for UINT8`);
  }
  return flat as number[];
}

/** The datatypes an input may have in binary form, and their bytes per element (BYTES: each element prefixed by its length). */
const BINARY_INPUTS: Record<string, number> = { FP32: 4, UINT8: 1, BYTES: 0 };

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The tensor data in binary form, as OIP's binary extensions lay it out
 * (REST's binary tensor data, gRPC's raw contents): little-endian,
 * row-major, no padding; each BYTES element a 4-byte little-endian length
 * then its bytes; the other datatypes exactly as many bytes as the shape
 * declares (BYTES elements are counted against the shape later). Views
 * into `bytes` where the layout allows, so the caller must not reuse it.
 */
export function tensorFromBinary(bytes: Buffer, datatype: string, shape: number[], where: string): ArrayLike<number> | Buffer[] {
  const size = BINARY_INPUTS[datatype];
  if (size === undefined) throw invalid(`${where}: datatype ${datatype} is not accepted; inputs are FP32, UINT8 or BYTES`);
  if (datatype === 'BYTES') return splitLengthPrefixed(bytes, where);
  const count = elementCount(shape);
  if (bytes.length !== count * size) {
    throw invalid(`${where} is ${bytes.length} bytes, but shape [${shape.join(',')}] of ${datatype} takes ${count * size}`);
  }
  if (datatype === 'UINT8') return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

/** An output tensor in binary form (the layout of tensorFromBinary; INT64 as 8 bytes). */
export function tensorToBinary(t: OutputTensor): Buffer {
  if (t.datatype === 'FP32') {
    const f = t.data as Float32Array;
    const b = Buffer.allocUnsafe(f.length * 4);
    for (let i = 0; i < f.length; i++) b.writeFloatLE(f[i], i * 4);
    return b;
  }
  if (t.datatype === 'INT64') {
    const v = t.data as number[];
    const b = Buffer.allocUnsafe(v.length * 8);
    v.forEach((x, i) => b.writeBigInt64LE(BigInt(x), i * 8));
    return b;
  }
  return joinLengthPrefixed((t.data as string[]).map((s) => Buffer.from(s)));
}

/** BYTES in binary form: each element is a 4-byte little-endian length, then the bytes. */
export function splitLengthPrefixed(buf: Buffer, where: string): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + 4 > buf.length) throw invalid(`${where}: truncated BYTES element length at offset ${off}`);
    const len = buf.readUInt32LE(off);
    off += 4;
    if (off + len > buf.length) throw invalid(`${where}: BYTES element of ${len} bytes runs past the end of the tensor data`);
    out.push(buf.subarray(off, off + len));
    off += len;
  }
  return out;
}

export function joinLengthPrefixed(items: Buffer[]): Buffer {
  const out = Buffer.allocUnsafe(items.reduce((n, b) => n + 4 + b.length, 0));
  let off = 0;
  for (const b of items) {
    out.writeUInt32LE(b.length, off);
    b.copy(out, off + 4);
    off += 4 + b.length;
  }
  return out;
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
