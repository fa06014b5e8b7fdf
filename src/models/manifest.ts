/**
 * manifest.json of a model artifact (docs/model-artifacts.md), validated field by
 * field so a bad artifact is refused with a message naming the field.
 * Labels, normalization, shapes and temperature come from here only.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { MODEL_NAME, MODEL_NAME_RULE, VERSION, VERSION_RULE } from '../core/rules';
import { type OodBlock, type OodModelShape, OodScorer } from './ood';

export type ModelFormat = 'onnx' | 'tfjs';

export type { Precision } from '../core/runtime-settings';

/** The test-set gate of an int8 copy, measured through onnxruntime-node (`npm run evaluate -- <dir> --precision int8`). */
export interface Int8Evaluation {
  accuracy: number;
  float32Accuracy: number;
  /** Share of test images where the int8 and float32 models give the same top-1 class. */
  agreement: number;
  samples: number;
  runtime?: string;
  [k: string]: unknown;
}

/** A statically quantized (QDQ) copy of the ONNX model, beside it in the same version directory (pctrain.quantize). */
export interface Int8Entry {
  path: string;
  /** The float model it was quantized from: its path and sha256, equal to the manifest's. */
  quantizedFrom?: { path: string; sha256: string };
  evaluation?: Int8Evaluation;
  /** scheme, activations, weights, calibration, validation, ...: kept as written, not read. */
  [k: string]: unknown;
}

export interface FormatEntry {
  path: string;
  inputLayout: 'NCHW' | 'NHWC';
  inputShape: number[];
  /** ONNX only: the int8 copy, when the version ships one. */
  int8?: Int8Entry;
}

export interface ConfidenceReference {
  binEdges: number[];
  counts: number[];
  quantiles: number[];
  mean: number;
}

export interface Manifest {
  schemaVersion: 1;
  name: string;
  version: string;
  kind: string;
  description?: string;
  labels: string[];
  input: {
    name: string;
    dtype: 'float32';
    shape: number[];
    layout: 'NCHW';
    normalization: { mean: number; std: number; formula?: string };
  };
  output: { name: string; kind: 'logits' | 'probabilities'; temperature: number; shape: number[] };
  formats: Partial<Record<ModelFormat, FormatEntry>>;
  files: Record<string, string>;
  parameters: number;
  macsPerImage?: number;
  evaluation?: { accuracy: number; ece?: number; samples?: number; [k: string]: unknown };
  calibration?: Record<string, unknown>;
  reference: {
    split: string;
    samples: number;
    confidence: ConfidenceReference;
    predictedClass: { counts: number[]; frequencies: number[] };
  };
  architecture?: Record<string, unknown>;
  training?: Record<string, unknown>;
  /** The out-of-distribution score and its threshold (models/ood.ts); a model without one answers without `ood`. */
  ood?: OodBlock;
}

export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

type Json = unknown;

function at(obj: Json, key: string, where: string): Json {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new ManifestError(`${where} must be an object`);
  return (obj as Record<string, Json>)[key];
}

function str(v: Json, where: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new ManifestError(`${where} must be a non-empty string`);
  return v;
}

function num(v: Json, where: string, min = -Infinity, max = Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new ManifestError(`${where} must be a number in [${min}, ${max}]`);
  }
  return v;
}

function numArray(v: Json, where: string, length?: number): number[] {
  if (!Array.isArray(v) || (length !== undefined && v.length !== length)) {
    throw new ManifestError(`${where} must be an array of ${length ?? 'some'} numbers`);
  }
  return v.map((x, i) => num(x, `${where}[${i}]`));
}

function shape(v: Json, where: string): number[] {
  const s = numArray(v, where);
  if (s.length === 0 || s.some((d, i) => !Number.isInteger(d) || (d < 1 && !(i === 0 && d === -1)))) {
    throw new ManifestError(`${where} must be a shape: positive integers, -1 allowed for the batch dimension`);
  }
  return s;
}

const SAFE_RELATIVE = /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[A-Za-z0-9._\-/]+$/;

function relPath(v: Json, where: string): string {
  const p = str(v, where);
  if (!SAFE_RELATIVE.test(p)) throw new ManifestError(`${where} must be a relative path inside the artifact directory`);
  return p;
}

/** Parse and validate a manifest; throws ManifestError naming the first bad field. */
export function validateManifest(json: Json): Manifest {
  if (at(json, 'schemaVersion', 'manifest') !== 1) throw new ManifestError('manifest.schemaVersion must be 1');
  const name = str(at(json, 'name', 'manifest'), 'name');
  if (!MODEL_NAME.test(name)) throw new ManifestError(`name must be ${MODEL_NAME_RULE}`);
  const version = str(at(json, 'version', 'manifest'), 'version');
  if (!VERSION.test(version)) throw new ManifestError(`version must be ${VERSION_RULE} (as a string)`);

  const labelsRaw = at(json, 'labels', 'manifest');
  if (!Array.isArray(labelsRaw) || labelsRaw.length < 2) throw new ManifestError('labels must be an array of at least two names');
  const labels = labelsRaw.map((l, i) => str(l, `labels[${i}]`));
  if (new Set(labels).size !== labels.length) throw new ManifestError('labels must be unique');

  const input = at(json, 'input', 'manifest');
  const inputShape = shape(at(input, 'shape', 'input'), 'input.shape');
  if (inputShape.length !== 4 || inputShape[0] !== -1 || inputShape[1] !== 1) {
    throw new ManifestError('input.shape must be [-1, 1, H, W] (a batch of one-channel images)');
  }
  if (at(input, 'dtype', 'input') !== 'float32') throw new ManifestError('input.dtype must be float32');
  if (at(input, 'layout', 'input') !== 'NCHW') throw new ManifestError('input.layout must be NCHW');
  const norm = at(input, 'normalization', 'input');
  const normalization = {
    mean: num(at(norm, 'mean', 'input.normalization'), 'input.normalization.mean', -1e3, 1e3),
    std: num(at(norm, 'std', 'input.normalization'), 'input.normalization.std', 1e-9, 1e3),
  };

  const output = at(json, 'output', 'manifest');
  const outputKind = at(output, 'kind', 'output');
  if (outputKind !== 'logits' && outputKind !== 'probabilities') throw new ManifestError('output.kind must be "logits" or "probabilities"');
  const outputShape = shape(at(output, 'shape', 'output'), 'output.shape');
  if (outputShape.length !== 2 || outputShape[1] !== labels.length) {
    throw new ManifestError(`output.shape must be [-1, ${labels.length}] (one score per label)`);
  }
  const temperature = num(at(output, 'temperature', 'output'), 'output.temperature', 1e-3, 1e3);

  const formatsRaw = at(json, 'formats', 'manifest');
  const formats: Partial<Record<ModelFormat, FormatEntry>> = {};
  for (const fmt of ['onnx', 'tfjs'] as const) {
    const f = at(formatsRaw, fmt, 'formats');
    if (f === undefined) continue;
    const layout = at(f, 'inputLayout', `formats.${fmt}`);
    if (layout !== 'NCHW' && layout !== 'NHWC') throw new ManifestError(`formats.${fmt}.inputLayout must be NCHW or NHWC`);
    formats[fmt] = {
      path: relPath(at(f, 'path', `formats.${fmt}`), `formats.${fmt}.path`),
      inputLayout: layout,
      inputShape: shape(at(f, 'inputShape', `formats.${fmt}`), `formats.${fmt}.inputShape`),
    };
    const int8 = at(f, 'int8', `formats.${fmt}`);
    if (int8 !== undefined) {
      if (fmt !== 'onnx') throw new ManifestError(`formats.${fmt}.int8: only the ONNX format has an int8 copy`);
      formats[fmt].int8 = int8Entry(int8, formats[fmt].path);
    }
  }
  if (Object.keys(formats).length === 0) throw new ManifestError('formats must name at least one of onnx, tfjs');

  const filesRaw = at(json, 'files', 'manifest');
  if (typeof filesRaw !== 'object' || filesRaw === null) throw new ManifestError('files must map paths to sha256');
  const files: Record<string, string> = {};
  for (const [p, h] of Object.entries(filesRaw)) {
    relPath(p, `files key ${JSON.stringify(p)}`);
    if (typeof h !== 'string' || !/^[0-9a-f]{64}$/.test(h))
      throw new ManifestError(`files[${JSON.stringify(p)}] must be a sha256 hex digest`);
    files[p] = h;
  }
  for (const [fmt, f] of Object.entries(formats)) {
    if (!(f.path in files)) throw new ManifestError(`formats.${fmt}.path ${f.path} has no sha256 in files`);
    if (f.int8 && !(f.int8.path in files)) throw new ManifestError(`formats.${fmt}.int8.path ${f.int8.path} has no sha256 in files`);
    const from = f.int8?.quantizedFrom;
    if (from && (from.path !== f.path || from.sha256 !== files[f.path])) {
      throw new ManifestError(
        `formats.${fmt}.int8.quantizedFrom must name ${f.path} and its sha256 in files: the int8 model was made from another float model`,
      );
    }
  }

  const ref = at(json, 'reference', 'manifest');
  const conf = at(ref, 'confidence', 'reference');
  const binEdges = numArray(at(conf, 'binEdges', 'reference.confidence'), 'reference.confidence.binEdges');
  if (binEdges.length < 2 || binEdges.some((e, i) => e < 0 || e > 1 || (i > 0 && e <= binEdges[i - 1]))) {
    throw new ManifestError('reference.confidence.binEdges must increase strictly within [0, 1]');
  }
  const counts = numArray(at(conf, 'counts', 'reference.confidence'), 'reference.confidence.counts', binEdges.length - 1);
  const quantiles = numArray(at(conf, 'quantiles', 'reference.confidence'), 'reference.confidence.quantiles');
  if (quantiles.length < 2 || quantiles.some((q, i) => i > 0 && q < quantiles[i - 1])) {
    throw new ManifestError('reference.confidence.quantiles must be a non-decreasing grid');
  }
  const pc = at(ref, 'predictedClass', 'reference');
  const classCounts = numArray(at(pc, 'counts', 'reference.predictedClass'), 'reference.predictedClass.counts', labels.length);
  const frequencies = numArray(at(pc, 'frequencies', 'reference.predictedClass'), 'reference.predictedClass.frequencies', labels.length);

  const j = json as Record<string, unknown>;
  return {
    schemaVersion: 1,
    name,
    version,
    kind: typeof j.kind === 'string' ? j.kind : 'unknown',
    description: typeof j.description === 'string' ? j.description : undefined,
    labels,
    input: { name: str(at(input, 'name', 'input'), 'input.name'), dtype: 'float32', shape: inputShape, layout: 'NCHW', normalization },
    output: { name: str(at(output, 'name', 'output'), 'output.name'), kind: outputKind, temperature, shape: outputShape },
    formats,
    files,
    parameters: num(at(json, 'parameters', 'manifest'), 'parameters', 1),
    macsPerImage: typeof j.macsPerImage === 'number' ? j.macsPerImage : undefined,
    evaluation: j.evaluation as Manifest['evaluation'],
    calibration: j.calibration as Manifest['calibration'],
    reference: {
      split: str(at(ref, 'split', 'reference'), 'reference.split'),
      samples: num(at(ref, 'samples', 'reference'), 'reference.samples', 1),
      confidence: { binEdges, counts, quantiles, mean: num(at(conf, 'mean', 'reference.confidence'), 'reference.confidence.mean', 0, 1) },
      predictedClass: { counts: classCounts, frequencies },
    },
    architecture: j.architecture as Manifest['architecture'],
    training: j.training as Manifest['training'],
    ood:
      j.ood === undefined
        ? undefined
        : oodBlock(j.ood, outputKind, { classes: labels.length, pixels: inputShape.slice(1).reduce((a, b) => a * b, 1) }),
  };
}

/** `formats.onnx.int8`: the int8 copy's path (listed in files, checked by the caller), where it came from, its test-set gate. */
function int8Entry(raw: unknown, floatPath: string): Int8Entry {
  const where = 'formats.onnx.int8';
  const p = relPath(at(raw, 'path', where), `${where}.path`);
  if (p === floatPath) throw new ManifestError(`${where}.path must differ from formats.onnx.path (${floatPath})`);
  const entry = { ...(raw as Record<string, unknown>), path: p } as Int8Entry;
  const from = at(raw, 'quantizedFrom', where);
  if (from !== undefined) {
    const sha = str(at(from, 'sha256', `${where}.quantizedFrom`), `${where}.quantizedFrom.sha256`);
    if (!/^[0-9a-f]{64}$/.test(sha)) throw new ManifestError(`${where}.quantizedFrom.sha256 must be a sha256 hex digest`);
    entry.quantizedFrom = { path: relPath(at(from, 'path', `${where}.quantizedFrom`), `${where}.quantizedFrom.path`), sha256: sha };
  }
  const ev = at(raw, 'evaluation', where);
  if (ev !== undefined) {
    const e = `${where}.evaluation`;
    entry.evaluation = {
      ...(ev as Record<string, unknown>),
      accuracy: num(at(ev, 'accuracy', e), `${e}.accuracy`, 0, 1),
      float32Accuracy: num(at(ev, 'float32Accuracy', e), `${e}.float32Accuracy`, 0, 1),
      agreement: num(at(ev, 'agreement', e), `${e}.agreement`, 0, 1),
      samples: num(at(ev, 'samples', e), `${e}.samples`, 1),
    };
  }
  return entry;
}

/** The `ood` block: its score, threshold and false-flag rate, and parameters the scorer can use. */
function oodBlock(raw: unknown, outputKind: string, model: OodModelShape): OodBlock {
  if (outputKind !== 'logits') throw new ManifestError('ood needs output.kind "logits": its score reads the raw logits');
  str(at(raw, 'score', 'ood'), 'ood.score');
  num(at(raw, 'threshold', 'ood'), 'ood.threshold');
  num(at(raw, 'falseFlagRate', 'ood'), 'ood.falseFlagRate', 0, 1);
  num(at(at(raw, 'params', 'ood'), 'temperature', 'ood.params'), 'ood.params.temperature', Number.MIN_VALUE);
  const block = raw as OodBlock;
  try {
    new OodScorer(block, model);
  } catch (err) {
    throw new ManifestError(`ood: ${(err as Error).message}`);
  }
  return block;
}

function sha256OfFile(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('error', reject)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** Read, validate and checksum-verify the artifact in `dir`. */
export async function loadManifest(dir: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(path.join(dir, 'manifest.json'), 'utf8');
  } catch (err) {
    throw new ManifestError(`cannot read ${path.join(dir, 'manifest.json')}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ManifestError(`manifest.json is not valid JSON: ${(err as Error).message}`);
  }
  const manifest = validateManifest(json);
  await verifyFiles(dir, manifest.files);
  return manifest;
}

/** Refuse an artifact whose files do not match their recorded sha256. */
export async function verifyFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [rel, expected] of Object.entries(files)) {
    const file = path.join(dir, rel);
    let actual: string;
    try {
      actual = await sha256OfFile(file);
    } catch (err) {
      throw new ManifestError(
        `${rel} listed in manifest.json cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    if (actual !== expected) {
      throw new ManifestError(
        `${rel} does not match its sha256 in manifest.json (expected ${expected.slice(0, 12)}…, found ${actual.slice(0, 12)}…)`,
      );
    }
  }
}
