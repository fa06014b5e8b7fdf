/**
 * The DataPlane is the only place that knows the request rules: readiness,
 * input validation, model selection, timing and prediction ids. HTTP and
 * gRPC parse, call it, and serialize what it returns.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { LoadedModel } from '../models/model';
import type { ModelRepository } from '../models/repository';
import type { Preprocessor } from '../preprocess/preprocessor';
import type { ModelSelector, Selection } from '../routing/selector';
import { invalid, ServiceError } from './errors';
import type { BatchItem, Classification, ClassifyOptions, ClassPrediction, ImageInput } from './types';

export interface DataPlaneLimits {
  maxBatchImages: number;
}

export interface DataPlaneDeps {
  repository: ModelRepository;
  preprocessor: Preprocessor;
  selector: ModelSelector;
  limits: DataPlaneLimits;
}

const DEFAULT_TOP_K = 3;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const VERSION_RE = /^[1-9][0-9]{0,8}$/;

export class DataPlane {
  private draining = false;

  constructor(private readonly deps: DataPlaneDeps) {}

  /** Live: the process answers. Ready: models are loaded and we are not draining. */
  isReady(): boolean {
    return !this.draining && !this.deps.repository.isEmpty();
  }

  readiness(): { ready: boolean; reason?: string } {
    if (this.draining) return { ready: false, reason: 'draining: the service is shutting down' };
    if (this.deps.repository.isEmpty()) return { ready: false, reason: 'no model is loaded' };
    return { ready: true };
  }

  startDraining(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  models() {
    return this.deps.repository.status();
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

  private checkRequest(opts: ClassifyOptions): Selection {
    if (!this.deps.repository || this.deps.repository.isEmpty()) throw new ServiceError('UNAVAILABLE', 'no model is loaded yet', { retryAfterSeconds: 1 });
    if (opts.model !== undefined && !NAME_RE.test(opts.model)) throw invalid('model must be a model name ([A-Za-z0-9_-], at most 63 characters)');
    if (opts.version !== undefined && opts.model === undefined) throw invalid('version needs model');
    if (opts.version !== undefined && !VERSION_RE.test(opts.version)) throw invalid('version must be a positive integer');
    if (opts.routingKey !== undefined && (opts.routingKey.length === 0 || opts.routingKey.length > 256)) throw invalid('routing key must be 1..256 characters');
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
      const prepared = await Promise.allSettled(images.map((img) => this.deps.preprocessor.toPixels(img, w, h)));
      if (!perItemErrors && prepared[0].status === 'rejected') throw ServiceError.from(prepared[0].reason);
      const ok = prepared.flatMap((p, i) => (p.status === 'fulfilled' ? [{ i, pixels: p.value.pixels }] : []));
      const t1 = performance.now();
      let probs: Float32Array = new Float32Array(0);
      if (ok.length > 0) {
        const input = new Float32Array(ok.length * model.pixelsPerImage);
        ok.forEach((item, j) => model.normalizeInto(item.pixels, input, j));
        probs = await model.predict(input, ok.length);
      }
      const t2 = performance.now();
      const timings = { preprocessMs: round(t1 - t0), inferenceMs: round(t2 - t1), totalMs: round(performance.now() - t0) };
      const out: BatchItem[] = prepared.map((p) =>
        p.status === 'rejected' ? { error: ServiceError.from(p.reason).toJSON() } : (undefined as unknown as BatchItem),
      );
      ok.forEach((item, j) => {
        out[item.i] = this.describe(model, selection.arm, probs.subarray(j * model.numClasses, (j + 1) * model.numClasses), opts.topK, timings);
      });
      return out;
    } finally {
      lease.release();
    }
  }

  private describe(model: LoadedModel, arm: string, probs: Float32Array, topK: number | undefined, timings: Classification['timings']): Classification {
    const labels = model.manifest.labels;
    const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]);
    const top: ClassPrediction[] = order
      .slice(0, Math.min(topK ?? DEFAULT_TOP_K, labels.length))
      .map((k) => ({ label: labels[k], labelIndex: k, confidence: probs[k] }));
    return {
      predictionId: randomUUID(),
      model: model.name,
      version: model.version,
      arm,
      label: top[0].label,
      labelIndex: top[0].labelIndex,
      confidence: top[0].confidence,
      top,
      timings,
    };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
