/**
 * The DataPlane is the only place that knows the request rules: readiness,
 * input validation, model selection, timing and prediction ids. HTTP and
 * gRPC parse, call it, and serialize what it returns.
 */
import { performance } from 'node:perf_hooks';
import type { LoadedModel } from '../models/model';
import type { ModelRepository } from '../models/repository';
import type { ServiceMetrics } from '../monitoring/metrics';
import { type ExperimentArms, type Monitor, WINDOWS, type WindowName } from '../monitoring/monitor';
import type { ReceiptSigner, SeenIds } from '../monitoring/receipts';
import type { Preprocessor } from '../preprocess/preprocessor';
import type { ModelSelector, Selection } from '../routing/selector';
import { Admission, type DrainStats } from './admission';
import { invalid, ServiceError } from './errors';
import { type BatcherOptions, DynamicBatcher } from '../models/batcher';
import type { BatchItem, Classification, ClassifyOptions, ClassPrediction, FeedbackRequest, FeedbackResult, ImageInput } from './types';

export interface ModelInfo {
  name: string;
  version: string;
  versions: string[];
  format: string;
  labels: readonly string[];
  inputName: string;
  inputShape: readonly number[];
  pixelsPerImage: number;
}

export interface DataPlaneLimits {
  maxBatchImages: number;
}

export interface DataPlaneDeps {
  repository: ModelRepository;
  preprocessor: Preprocessor;
  selector: ModelSelector;
  limits: DataPlaneLimits;
  /** Micro-batching of each model's runtime calls. */
  batching: BatcherOptions;
  /** Signs prediction ids and verifies them when feedback comes back. */
  receipts: ReceiptSigner;
  /** Prediction ids whose feedback this replica has counted. */
  seenFeedback: SeenIds;
  /** Drift, accuracy and A/B counts from live traffic. */
  monitor: Monitor;
  /** The experiment in force (from the routing config), if any. */
  experiment: () => ExperimentArms | undefined;
  metrics: ServiceMetrics;
  /** The shadow model in force (from the routing config), if any. */
  shadow: () => { model: string; version?: string; fraction: number } | undefined;
  random?: () => number;
}

/** Shadow batches running at once; more are dropped (and counted) rather than queued. */
const MAX_SHADOW_IN_FLIGHT = 2;

const DEFAULT_TOP_K = 3;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const VERSION_RE = /^[1-9][0-9]{0,8}$/;

export class DataPlane {
  /** Requests taken on by the transports; closed when draining. */
  private readonly admission = new Admission();
  private shadowInFlight = 0;
  /** One batcher per loaded model version; a retired version's goes with it. */
  private readonly batchers = new WeakMap<LoadedModel, DynamicBatcher>();

  constructor(private readonly deps: DataPlaneDeps) {}

  /** Live: the process answers. Ready: models are loaded and we are not draining. */
  isReady(): boolean {
    return !this.admission.isDraining && !this.deps.repository.isEmpty();
  }

  readiness(): { ready: boolean; reason?: string } {
    if (this.admission.isDraining) return { ready: false, reason: 'draining: the service is shutting down' };
    if (this.deps.repository.isEmpty()) return { ready: false, reason: 'no model is loaded' };
    return { ready: true };
  }

  /**
   * A transport starting work on a request takes it on here and calls the
   * returned function once it is answered; while draining this throws
   * UNAVAILABLE (with Retry-After) instead.
   */
  admit(): () => void {
    return this.admission.admit();
  }

  /** Readiness false and admit() refusing from now on; requests already admitted go on. */
  startDraining(): void {
    this.admission.startDraining();
  }

  get isDraining(): boolean {
    return this.admission.isDraining;
  }

  /** Resolves true once every admitted request is answered, false after `timeoutMs`. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    return this.admission.whenIdle(timeoutMs);
  }

  drainStats(): DrainStats & { stillInFlight: number } {
    return { ...this.admission.drainStats(), stillInFlight: this.admission.active };
  }

  models() {
    return this.deps.repository.status();
  }

  /** What a client needs to call one model: versions, runtime, labels, input tensor. */
  modelInfo(name: string, version?: string): ModelInfo {
    if (!NAME_RE.test(name)) throw invalid('model must be a model name ([A-Za-z0-9_-], at most 63 characters)');
    if (version !== undefined && !VERSION_RE.test(version)) throw invalid('version must be a positive integer');
    const lease = this.deps.repository.acquire(name, version);
    try {
      const m = lease.model;
      return {
        name: m.name,
        version: m.version,
        versions: this.models()
          .models.filter((s) => s.name === name)
          .map((s) => s.version),
        format: m.runtime.format,
        labels: m.manifest.labels,
        inputName: m.manifest.input.name,
        inputShape: m.manifest.input.shape,
        pixelsPerImage: m.pixelsPerImage,
      };
    } finally {
      lease.release();
    }
  }

  /**
   * The evidence for the rollout decision and the on-call view: the A/B
   * report of the experiment in force, observed and estimated accuracy, and
   * drift, per window, from this replica's traffic.
   */
  monitoringReport() {
    const windows = Object.keys(WINDOWS) as WindowName[];
    const experiment = this.deps.experiment();
    return {
      experiment: experiment ? this.deps.monitor.ab(experiment) : null,
      accuracy: Object.fromEntries(windows.map((w) => [w, this.deps.monitor.accuracy(w)])),
      drift: Object.fromEntries(windows.map((w) => [w, this.deps.monitor.driftReports(w)])),
      shadow: Object.fromEntries(windows.map((w) => [w, this.deps.monitor.shadowAgreement(w)])),
    };
  }

  /**
   * Count one answered request (every transport calls this once per request
   * or stream item): its model and arm when known, and OK or the error code.
   */
  recordRequest(transport: string, seconds: number, code: string, model = '', arm = ''): void {
    this.deps.metrics.requests.inc({ transport, model, arm, code });
    this.deps.metrics.requestDuration.observe({ transport, arm, code }, seconds);
  }

  /** Ready and holding this model (and version, when given). */
  modelReady(name: string, version?: string): boolean {
    if (!this.isReady()) return false;
    try {
      this.modelInfo(name, version);
      return true;
    } catch {
      return false;
    }
  }

  async classify(image: ImageInput, opts: ClassifyOptions): Promise<Classification> {
    const [item] = await this.run([image], opts, false);
    return item as Classification;
  }

  /** Many images, one model call. A bad image fails alone; the others are classified. */
  async classifyBatch(images: ImageInput[], opts: ClassifyOptions): Promise<BatchItem[]> {
    if (images.length === 0) throw invalid('a batch needs at least one image');
    if (images.length > this.deps.limits.maxBatchImages) {
      throw invalid(`a batch holds at most ${this.deps.limits.maxBatchImages} images; got ${images.length}`);
    }
    return this.run(images, opts, true);
  }

  /**
   * Ground truth for an earlier prediction. The id is verified (signature,
   * age); feedback for an id this replica has already counted is answered
   * but not counted again.
   */
  async feedback(req: FeedbackRequest): Promise<FeedbackResult> {
    const reject =
      (reason: string) =>
      (err: unknown): never => {
        this.deps.metrics.feedbackRejected.inc({ outcome: reason });
        throw err;
      };
    let receipt: ReturnType<ReceiptSigner['verify']>;
    try {
      receipt = this.deps.receipts.verify(req.predictionId); // a string once verified
    } catch (err) {
      const code = ServiceError.from(err).code;
      return reject(code === 'PERMISSION_DENIED' ? 'tampered' : code === 'FAILED_PRECONDITION' ? 'expired' : 'malformed')(err);
    }
    let labels: readonly string[];
    let truth: number;
    try {
      labels = this.labelsOf(receipt.model);
    } catch (err) {
      return reject('unknown_model')(err);
    }
    try {
      truth = resolveLabel(req.label, labels);
    } catch (err) {
      return reject('bad_label')(err);
    }
    const accepted = this.deps.seenFeedback.add(req.predictionId as string);
    const outcome = !accepted ? 'duplicate' : truth === receipt.labelIndex ? 'correct' : 'incorrect';
    this.deps.metrics.feedback.inc({ model: receipt.model, arm: receipt.arm, outcome });
    if (accepted) {
      this.deps.monitor.feedbackReceived({
        model: receipt.model,
        version: receipt.version,
        arm: receipt.arm,
        experiment: receipt.experiment,
        confidence: receipt.confidence,
        correct: truth === receipt.labelIndex,
      });
    }
    return {
      accepted,
      correct: truth === receipt.labelIndex,
      model: receipt.model,
      version: receipt.version,
      arm: receipt.arm,
      predicted: labels[receipt.labelIndex] ?? String(receipt.labelIndex),
      label: labels[truth],
      confidence: receipt.confidence,
    };
  }

  /**
   * Mirror this batch to the shadow model after the answer is on its way:
   * the same pixels through the shadow's own normalization; only whether
   * its top-1 agrees with the served one is kept. It never delays or
   * changes an answer; when shadows pile up, new ones are dropped.
   */
  private maybeShadow(served: LoadedModel, items: { pixels?: ArrayLike<number> }[], probs: Float32Array): void {
    const shadow = this.deps.shadow();
    if (!shadow || shadow.model === served.name || items.length === 0 || items.some((it) => !it.pixels)) return;
    if ((this.deps.random ?? Math.random)() >= shadow.fraction) return;
    if (this.shadowInFlight >= MAX_SHADOW_IN_FLIGHT) {
      this.deps.metrics.shadowPredictions.inc({ model: shadow.model, outcome: 'dropped' }, items.length);
      return;
    }
    const k = served.numClasses;
    const servedTop = items.map((_, j) => argmaxRow(probs, j * k, k));
    const pixels = items.map((it) => it.pixels!);
    this.shadowInFlight++;
    setImmediate(() => {
      this.runShadow(shadow, served.name, pixels, servedTop).finally(() => this.shadowInFlight--);
    });
  }

  private async runShadow(
    shadow: { model: string; version?: string },
    servedModel: string,
    pixels: ArrayLike<number>[],
    servedTop: number[],
  ): Promise<void> {
    let lease;
    try {
      lease = this.deps.repository.acquire(shadow.model, shadow.version);
    } catch {
      this.deps.metrics.shadowPredictions.inc({ model: shadow.model, outcome: 'error' }, pixels.length);
      return;
    }
    try {
      const m = lease.model;
      const input = new Float32Array(pixels.length * m.pixelsPerImage);
      pixels.forEach((p, j) => m.normalizeInto(p, input, j));
      const probs = await m.predict(input, pixels.length);
      let agree = 0;
      servedTop.forEach((t, j) => {
        if (argmaxRow(probs, j * m.numClasses, m.numClasses) === t) agree++;
      });
      this.deps.metrics.shadowPredictions.inc({ model: m.name, outcome: 'agree' }, agree);
      this.deps.metrics.shadowPredictions.inc({ model: m.name, outcome: 'disagree' }, pixels.length - agree);
      this.deps.monitor.shadowCompared(servedModel, m.name, pixels.length, agree);
    } catch {
      this.deps.metrics.shadowPredictions.inc({ model: shadow.model, outcome: 'error' }, pixels.length);
    } finally {
      lease.release();
    }
  }

  private batcherFor(model: LoadedModel): DynamicBatcher {
    let b = this.batchers.get(model);
    if (!b) {
      const labels = { model: model.name, version: model.version };
      b = new DynamicBatcher(
        (input, n) => model.predict(input, n),
        { inputSize: model.pixelsPerImage, outputSize: model.numClasses },
        this.deps.batching,
        (call) => {
          // Per runtime call: what batching merged, and what the call cost.
          this.deps.metrics.inferenceDuration.observe(labels, call.seconds);
          this.deps.metrics.batchSize.observe(labels, call.images);
        },
      );
      this.batchers.set(model, b);
    }
    return b;
  }

  private labelsOf(model: string): readonly string[] {
    const loaded = this.deps.repository.latest(model);
    if (!loaded) throw new ServiceError('NOT_FOUND', `model ${model} of this prediction is not loaded here, so its labels are unknown`);
    return loaded.manifest.labels;
  }

  private checkRequest(opts: ClassifyOptions): Selection {
    if (!this.deps.repository || this.deps.repository.isEmpty())
      throw new ServiceError('UNAVAILABLE', 'no model is loaded yet', { retryAfterSeconds: 1 });
    if (opts.model !== undefined && !NAME_RE.test(opts.model))
      throw invalid('model must be a model name ([A-Za-z0-9_-], at most 63 characters)');
    if (opts.version !== undefined && opts.model === undefined) throw invalid('version needs model');
    if (opts.version !== undefined && !VERSION_RE.test(opts.version)) throw invalid('version must be a positive integer');
    if (opts.routingKey !== undefined && (opts.routingKey.length === 0 || opts.routingKey.length > 256))
      throw invalid('routing key must be 1..256 characters');
    if (opts.topK !== undefined && (!Number.isInteger(opts.topK) || opts.topK < 1)) throw invalid('topK must be a positive integer');
    return this.deps.selector.select(opts);
  }

  private async run(images: ImageInput[], opts: ClassifyOptions, perItemErrors: boolean): Promise<BatchItem[]> {
    const t0 = performance.now();
    const selection = this.checkRequest(opts);
    const lease = this.deps.repository.acquire(selection.model, selection.version);
    try {
      const model = lease.model;
      const [, , h, w] = model.manifest.input.shape;
      const prepared = await Promise.allSettled(
        images.map(async (img) =>
          img.kind === 'normalized'
            ? { normalized: checkNormalized(img.values, model.pixelsPerImage) }
            : { pixels: (await this.deps.preprocessor.toPixels(img, w, h)).pixels },
        ),
      );
      if (!perItemErrors && prepared[0].status === 'rejected') throw ServiceError.from(prepared[0].reason);
      const ok = prepared.flatMap((p, i) => (p.status === 'fulfilled' ? [{ i, ...p.value }] : []));
      const t1 = performance.now();
      let probs: Float32Array = new Float32Array(0);
      if (ok.length > 0) {
        const input = new Float32Array(ok.length * model.pixelsPerImage);
        ok.forEach((item, j) => {
          if (item.normalized) input.set(item.normalized, j * model.pixelsPerImage);
          else model.normalizeInto(item.pixels!, input, j);
        });
        probs = await this.batcherFor(model).submit(input, ok.length);
      }
      const t2 = performance.now();
      const timings = { preprocessMs: round(t1 - t0), inferenceMs: round(t2 - t1), totalMs: round(performance.now() - t0) };
      const out: BatchItem[] = prepared.map((p) =>
        p.status === 'rejected' ? { error: ServiceError.from(p.reason).toJSON() } : (undefined as unknown as BatchItem),
      );
      this.deps.monitor.watchModel(model.manifest);
      this.maybeShadow(model, ok, probs);
      ok.forEach((item, j) => {
        const c = this.describe(model, selection, probs.subarray(j * model.numClasses, (j + 1) * model.numClasses), opts.topK, timings);
        this.deps.monitor.prediction({
          model: c.model,
          version: c.version,
          arm: c.arm,
          experiment: selection.experiment,
          labelIndex: c.labelIndex,
          confidence: c.confidence,
        });
        this.deps.metrics.confidence.observe({ model: c.model, arm: c.arm }, c.confidence);
        this.deps.metrics.predictions.inc({ model: c.model, arm: c.arm, label: c.label });
        out[item.i] = c;
      });
      return out;
    } finally {
      lease.release();
    }
  }

  private describe(
    model: LoadedModel,
    selection: Selection,
    probs: Float32Array,
    topK: number | undefined,
    timings: Classification['timings'],
  ): Classification {
    const labels = model.manifest.labels;
    const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]);
    const top: ClassPrediction[] = order
      .slice(0, Math.min(topK ?? DEFAULT_TOP_K, labels.length))
      .map((k) => ({ label: labels[k], labelIndex: k, confidence: probs[k] }));
    return {
      predictionId: this.deps.receipts.issue({
        model: model.name,
        version: model.version,
        arm: selection.arm,
        labelIndex: top[0].labelIndex,
        confidence: top[0].confidence,
        experiment: selection.experiment,
      }),
      model: model.name,
      version: model.version,
      arm: selection.arm,
      label: top[0].label,
      labelIndex: top[0].labelIndex,
      confidence: top[0].confidence,
      top,
      timings,
    };
  }
}

/** A model-input tensor sent as is: the right length, finite values. */
function checkNormalized(values: ArrayLike<number>, expected: number): Float32Array {
  if (values.length !== expected) throw invalid(`a normalized input needs ${expected} values per image; got ${values.length}`);
  const out = Float32Array.from(values);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) throw invalid(`normalized input value ${i} is not a finite number`);
  }
  return out;
}

/** A label given by name or index, checked against the model's labels. */
export function resolveLabel(label: unknown, labels: readonly string[]): number {
  if (typeof label === 'number' || (typeof label === 'string' && /^[0-9]+$/.test(label))) {
    const i = Number(label);
    if (!Number.isInteger(i) || i < 0 || i >= labels.length) throw invalid(`label index must be 0..${labels.length - 1}; got ${label}`);
    return i;
  }
  if (typeof label !== 'string' || label.length === 0) throw invalid('label is required: a class name or index');
  const i = labels.indexOf(label);
  if (i >= 0) return i;
  const folded = labels.findIndex((l) => l.toLowerCase() === label.toLowerCase());
  if (folded >= 0) return folded;
  throw invalid(`unknown label "${label.slice(0, 64)}"; expected one of: ${labels.join(', ')}`);
}

function argmaxRow(xs: Float32Array, start: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (xs[start + i] > xs[start + best]) best = i;
  return best;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
