/**
 * The service's HTTP API as the page uses it: the answer shapes (as
 * docs/api.md and docs/ab-testing.md describe them, with the fields a later
 * version may add marked optional) and fetch helpers that turn an error
 * answer into an ApiError carrying its code and message.
 */

export interface ClassPrediction {
  label: string;
  labelIndex: number;
  confidence: number;
}

export interface Ood {
  score: number;
  threshold: number;
  flagged: boolean;
}

/** Why the service answered without a label. */
export type AbstainReason = 'out-of-distribution' | 'low-confidence';

export interface Classification {
  predictionId: string;
  model: string;
  version: string;
  arm: string;
  /** The most likely class; absent when the service abstained. */
  label?: string;
  labelIndex?: number;
  /** The most likely class's calibrated confidence (also when the service abstained). */
  confidence: number;
  top: ClassPrediction[];
  timings: { preprocessMs: number; inferenceMs: number; totalMs: number };
  /** Out-of-distribution verdict, when the model ships a score. */
  ood?: Ood;
  /** Set when the service declined to answer with a label: why (then `label` and `labelIndex` are absent). */
  abstained?: AbstainReason;
}

export interface FeedbackResult {
  accepted: boolean;
  correct: boolean;
  model: string;
  version: string;
  arm: string;
  predicted: string;
  label: string;
  confidence: number;
  /** The prediction abstained: `predicted` is its most likely class, and the label counts apart from accuracy. */
  abstained?: true;
}

export interface ModelInfo {
  name: string;
  version: string;
  kind?: string;
  state?: string;
  format?: string;
  backend?: string;
  parameters?: number;
  labels: string[];
  testAccuracy?: number | null;
}

export interface ModelsAnswer {
  models: ModelInfo[];
  failures?: { name?: string; version?: string; error?: string }[];
}

export interface AbArm {
  name: string;
  model: string;
  version?: string;
  weight: number;
  assigned: number;
  labelled: number;
  correct: number;
  accuracy: number | null;
  low: number | null;
  high: number | null;
}

export interface AbComparison {
  candidate: string;
  control: string;
  difference: number | null;
  low: number | null;
  high: number | null;
  pValue: number | null;
  labelsNeededPerArm: number | null;
  verdict?: string;
  decision?: string;
  reason?: string;
}

export interface AbExperiment {
  experiment: string;
  control: string;
  alpha?: number;
  arms: AbArm[];
  sampleRatio?: { pValue: number | null; mismatch: boolean };
  comparisons?: AbComparison[];
  verdict?: string;
  decision?: string;
}

export interface AccuracyRow {
  model: string;
  arm: string;
  figures: { labelled: number; correct: number; observed: number | null; expected: number | null };
}

export interface DriftRow {
  model: string;
  report: {
    samples: number;
    estimatedAccuracy: number | null;
    psi: number | null;
    jsDistance: number | null;
    ksStatistic: number | null;
    ksPValue: number | null;
    classChiSquarePValue: number | null;
    drift: boolean;
    reasons: string[];
  };
}

export interface ShadowRow {
  served: string;
  shadow: string;
  compared: number;
  agreement: number | null;
}

export interface AbAnswer {
  experiment: AbExperiment | null;
  accuracy?: Record<string, AccuracyRow[]>;
  drift?: Record<string, DriftRow[]>;
  shadow?: Record<string, ShadowRow[]>;
}

/** A model's manifest.json, the parts the browser needs. */
export interface Manifest {
  name: string;
  version: string;
  labels: string[];
  input: { normalization: { mean: number; std: number } };
  output: { temperature?: number };
  formats: { tfjs?: { path: string; inputLayout: 'NHWC' | 'NCHW'; inputShape: number[] } };
}

/** An error answer of the API (or a failure to reach it), readable as `code: message`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  describe(): string {
    const status = this.status > 0 ? ` (HTTP ${this.status})` : '';
    return `${this.code}${status}: ${this.message}`;
  }
}

/** The error in an answer body: `{error: {code, message}}`, or `{error: "..."}` (the OIP routes), or the text itself. */
function errorOf(status: number, statusText: string, text: string): ApiError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const err = (body as { error?: unknown } | undefined)?.error;
  if (err && typeof err === 'object') {
    const { code, message } = err as { code?: unknown; message?: unknown };
    return new ApiError(status, typeof code === 'string' ? code : `HTTP_${status}`, typeof message === 'string' ? message : statusText);
  }
  if (typeof err === 'string') return new ApiError(status, `HTTP_${status}`, err);
  const snippet = text.trim().slice(0, 200);
  return new ApiError(status, `HTTP_${status}`, snippet || statusText || 'no answer body');
}

export async function apiFetch<T>(path: string, init?: RequestInit): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers: { accept: 'application/json', ...init?.headers } });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `the service could not be reached (${(err as Error).message})`);
  }
  const text = await res.text();
  if (!res.ok) throw errorOf(res.status, res.statusText, text);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(res.status, 'BAD_ANSWER', `the answer to ${path} is not JSON`);
  }
}

/** A readable line for any error the page catches. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) return err.describe();
  if (err instanceof Error) return err.message;
  return String(err);
}

export interface ClassifyRequest {
  image: Blob;
  fileName: string;
  model?: string;
  version?: string;
  topK?: number;
  routingKey?: string;
}

export function classify(req: ClassifyRequest): Promise<Classification> {
  const form = new FormData();
  form.append('image', req.image, req.fileName);
  if (req.model) form.append('model', req.model);
  if (req.model && req.version) form.append('version', req.version);
  if (req.topK !== undefined) form.append('topK', String(req.topK));
  if (req.routingKey) form.append('routingKey', req.routingKey);
  return apiFetch<Classification>('/v1/classify', { method: 'POST', body: form });
}

export function sendFeedback(predictionId: string, label: string): Promise<FeedbackResult> {
  return apiFetch<FeedbackResult>('/v1/feedback', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ predictionId, label }),
  });
}

export const getModels = (): Promise<ModelsAnswer> => apiFetch<ModelsAnswer>('/v1/models');
export const getAb = (): Promise<AbAnswer> => apiFetch<AbAnswer>('/v1/ab');

/** The files of a loaded model that the service serves for the browser. */
export function modelFileUrl(name: string, version: string, file: string): string {
  return `/ui/models/${encodeURIComponent(name)}/${encodeURIComponent(version)}/${encodeURIComponent(file)}`;
}

export const getManifest = (name: string, version: string): Promise<Manifest> =>
  apiFetch<Manifest>(modelFileUrl(name, version, 'manifest.json'));

/** Versions compare as numbers when both are numbers ("10" after "9"), else as text. */
export function compareVersions(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  return a.localeCompare(b);
}
