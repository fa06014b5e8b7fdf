/**
 * Classification: choose the model (explicit or A/B), turn each input into
 * the model's tensor, run it through the model's micro-batcher, and describe
 * the result (top-k, signed prediction id, timings, the out-of-distribution
 * verdict, an abstention), recording each prediction for drift, accuracy
 * and the A/B analysis, and offering it to the payload log.
 */
import { performance } from 'node:perf_hooks';
import type { ModelBatchers } from '../models/batchers';
import type { LoadedModel } from '../models/model';
import type { ModelRepository } from '../models/repository';
import type { ReceiptSigner } from '../feedback/receipts';
import type { ServiceMetrics } from '../monitoring/metrics';
import type { Monitor } from '../monitoring/monitor';
import type { PayloadLogger } from '../monitoring/payload/payload-log';
import type { Preprocessor } from '../preprocess/preprocessor';
import type { ModelSelector, Selection } from '../routing/selector';
import type { PayloadAnswer } from '../monitoring/payload/record';
import { type AbstainPolicy, abstainReason, type AbstainSettings, isLowConfidence, policyFor } from './abstain';
import { invalid, ServiceError } from './errors';
import { checkImageCount, checkModelName, checkRoutingKey, checkTopK, checkVersion, DEFAULT_TOP_K } from './rules';
import type { ShadowTraffic } from './shadow';
import type { BatchItem, Classification, ClassifyOptions, ClassPrediction, ImageInput, OodVerdict, Timings, Transport } from './types';

export interface ClassifierDeps {
  repository: ModelRepository;
  preprocessor: Preprocessor;
  selector: ModelSelector;
  batchers: ModelBatchers;
  shadow: ShadowTraffic;
  receipts: ReceiptSigner;
  monitor: Monitor;
  metrics: ServiceMetrics;
  /** Images in one request at most (CLASSIFY_MAX_IMAGES). */
  maxImages: number;
  /** When to answer without a label. */
  abstain: AbstainSettings;
  /** The payload log for labelling, when one is configured. */
  payload?: Pick<PayloadLogger, 'sample' | 'log'>;
}

interface Prepared {
  i: number;
  pixels?: ArrayLike<number>;
  normalized?: Float32Array;
}

export class Classifier {
  constructor(private readonly deps: ClassifierDeps) {}

  async classify(image: ImageInput, opts: ClassifyOptions): Promise<Classification> {
    const [item] = await this.run([image], opts, false);
    return item as Classification;
  }

  /** Many images, one model call. A bad image fails alone; the others are classified. */
  async classifyBatch(images: ImageInput[], opts: ClassifyOptions): Promise<BatchItem[]> {
    checkImageCount(images.length, this.deps.maxImages);
    return this.run(images, opts, true);
  }

  private select(opts: ClassifyOptions): Selection {
    if (this.deps.repository.isEmpty()) throw new ServiceError('UNAVAILABLE', 'no model is loaded yet', { retryAfterSeconds: 1 });
    if (opts.model !== undefined) checkModelName(opts.model);
    if (opts.version !== undefined && opts.model === undefined) throw invalid('version needs model');
    if (opts.version !== undefined) checkVersion(opts.version);
    if (opts.routingKey !== undefined) checkRoutingKey(opts.routingKey);
    if (opts.topK !== undefined) checkTopK(opts.topK);
    return this.deps.selector.select(opts);
  }

  private async run(images: ImageInput[], opts: ClassifyOptions, perItemErrors: boolean): Promise<BatchItem[]> {
    const t0 = performance.now();
    const selection = this.select(opts);
    const lease = this.deps.repository.acquire(selection.model, selection.version);
    try {
      const model = lease.model;
      const prepared = await Promise.allSettled(images.map((img) => this.prepare(model, img)));
      if (!perItemErrors && prepared[0].status === 'rejected') throw ServiceError.from(prepared[0].reason);
      const ok = prepared.flatMap((p, i): Prepared[] => (p.status === 'fulfilled' ? [{ i, ...p.value }] : []));
      const t1 = performance.now();
      const raw = ok.length > 0 ? await this.deps.batchers.raw(model, this.tensor(model, ok), ok.length) : new Float32Array(0);
      const probs = model.calibrated(raw);
      const t2 = performance.now();
      const timings = { preprocessMs: round(t1 - t0), inferenceMs: round(t2 - t1), totalMs: round(performance.now() - t0) };
      const out: BatchItem[] = prepared.map((p) =>
        p.status === 'rejected' ? { error: ServiceError.from(p.reason).toJSON() } : (undefined as unknown as BatchItem),
      );
      this.deps.monitor.watchModel(model.manifest);
      this.deps.shadow.offer(
        model,
        ok.map((item) => item.pixels),
        probs,
      );
      const k = model.numClasses;
      const policy = policyFor(opts.abstain, this.deps.abstain);
      ok.forEach((item, j) => {
        const logits = raw.subarray(j * k, (j + 1) * k);
        // An OIP FP32 input is turned back into pixels only when something reads them.
        const pixels = item.pixels ?? (model.ood || this.deps.payload ? model.pixelsOf(item.normalized!, 0) : undefined);
        const ood = pixels && model.ood?.verdict(pixels, logits);
        const c = this.describe(model, selection, probs.subarray(j * k, (j + 1) * k), opts.topK, timings, ood, policy);
        this.record(c, selection);
        if (pixels) this.offer(model, c, pixels, opts.transport);
        out[item.i] = c;
      });
      return out;
    } finally {
      lease.release();
    }
  }

  private async prepare(model: LoadedModel, img: ImageInput): Promise<Omit<Prepared, 'i'>> {
    if (img.kind === 'normalized') return { normalized: checkNormalized(img.values, model.pixelsPerImage) };
    const [, , h, w] = model.manifest.input.shape;
    return { pixels: (await this.deps.preprocessor.toPixels(img, w, h)).pixels };
  }

  private tensor(model: LoadedModel, items: Prepared[]): Float32Array {
    const input = new Float32Array(items.length * model.pixelsPerImage);
    items.forEach((item, j) => {
      if (item.normalized) input.set(item.normalized, j * model.pixelsPerImage);
      else model.normalizeInto(item.pixels!, input, j);
    });
    return input;
  }

  private record(c: Classification, selection: Selection): void {
    const { monitor, metrics } = this.deps;
    monitor.prediction({
      model: c.model,
      version: c.version,
      arm: c.arm,
      experiment: selection.experiment,
      labelIndex: c.top[0].labelIndex,
      confidence: c.confidence,
      abstained: c.abstained,
    });
    if (c.ood) {
      // A score that could not be computed stands at Number.MAX_VALUE (flagged): kept out of the histogram's sum.
      if (c.ood.score < Number.MAX_VALUE) metrics.oodScore.observe({ model: c.model, arm: c.arm }, c.ood.score);
      if (c.ood.flagged) metrics.oodFlagged.inc({ model: c.model, arm: c.arm });
    }
    // Confidence and class mix describe every input, as drift compares them with the reference;
    // abstentions are counted beside them, and kept out of accuracy.
    metrics.confidence.observe({ model: c.model, arm: c.arm }, c.confidence);
    metrics.predictions.inc({ model: c.model, arm: c.arm, label: c.top[0].label });
    if (c.abstained) metrics.abstentions.inc({ model: c.model, arm: c.arm, reason: c.abstained });
  }

  /** Offer the prediction to the payload log: flagged, abstained and low-confidence ones always, others sampled. */
  private offer(model: LoadedModel, c: Classification, pixels: ArrayLike<number>, transport: Transport | undefined): void {
    const payload = this.deps.payload;
    if (!payload) return;
    const reason = payload.sample({
      flagged: c.ood?.flagged ?? false,
      abstained: c.abstained !== undefined,
      lowConfidence: isLowConfidence(c.confidence, this.deps.abstain),
    });
    if (!reason) return;
    payload.log({
      id: c.predictionId,
      time: new Date(),
      model: c.model,
      version: c.version,
      arm: c.arm,
      transport: transport ?? 'http',
      input: { width: model.manifest.input.shape[3], height: model.manifest.input.shape[2], pixels: Uint8Array.from(pixels) },
      answer: c as unknown as PayloadAnswer,
      reason,
    });
  }

  private describe(
    model: LoadedModel,
    selection: Selection,
    probs: Float32Array,
    topK: number | undefined,
    timings: Timings,
    ood: OodVerdict | undefined,
    policy: AbstainPolicy,
  ): Classification {
    const labels = model.manifest.labels;
    const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]);
    const top: ClassPrediction[] = order
      .slice(0, Math.min(topK ?? DEFAULT_TOP_K, labels.length))
      .map((k) => ({ label: labels[k], labelIndex: k, confidence: probs[k] }));
    const abstained = abstainReason(policy, ood, top[0].confidence, this.deps.abstain);
    const c: Classification = {
      predictionId: this.deps.receipts.issue({
        model: model.name,
        version: model.version,
        arm: selection.arm,
        labelIndex: top[0].labelIndex,
        confidence: top[0].confidence,
        experiment: selection.experiment,
        abstained: abstained !== undefined,
      }),
      model: model.name,
      version: model.version,
      arm: selection.arm,
      ...(abstained ? {} : { label: top[0].label, labelIndex: top[0].labelIndex }),
      confidence: top[0].confidence,
      top,
      timings,
    };
    if (ood) c.ood = ood;
    if (abstained) c.abstained = abstained;
    return c;
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

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
