/**
 * The DataPlane is what the transports call: classification, feedback, the
 * monitoring report, the models and readiness. Each job lives in its own
 * module (classifier.ts, shadow.ts, feedback/, monitoring/); this class
 * only puts them behind one face and answers the questions that need
 * several of them (is the service ready, what does a model take).
 */
import type { FeedbackService } from '../feedback/feedback';
import type { ModelRepository } from '../models/repository';
import type { ExperimentArms, Monitor } from '../monitoring/monitor';
import type { Admission } from './admission';
import type { Classifier } from './classifier';
import { ServiceError } from './errors';
import { checkModelName, checkVersion } from './rules';
import type { BatchItem, Classification, ClassifyOptions, FeedbackRequest, FeedbackResult, ImageInput } from './types';

export interface ModelInfo {
  name: string;
  version: string;
  versions: string[];
  format: string;
  labels: readonly string[];
  inputName: string;
  inputShape: readonly number[];
  pixelsPerImage: number;
  /** The out-of-distribution score the model ships, if any. */
  ood?: { score: string; threshold: number; falseFlagRate: number };
}

export interface DataPlaneDeps {
  repository: ModelRepository;
  /** Requests taken on by the pipeline: readiness is false while it drains. */
  admission: Admission;
  classifier: Classifier;
  feedback: FeedbackService;
  /** Drift, accuracy and A/B counts from live traffic. */
  monitor: Monitor;
  /** The experiment in force (from the routing config), if any. */
  experiment: () => ExperimentArms | undefined;
}

export class DataPlane {
  constructor(private readonly deps: DataPlaneDeps) {}

  /** Live: the process answers. Ready: models are loaded and we are not draining. */
  isReady(): boolean {
    return this.readiness().ready;
  }

  readiness(): { ready: boolean; reason?: string } {
    if (this.deps.admission.isDraining) return { ready: false, reason: 'draining: the service is shutting down' };
    if (this.deps.repository.isEmpty()) return { ready: false, reason: 'no model is loaded' };
    return { ready: true };
  }

  models() {
    return this.deps.repository.status();
  }

  /** What a client needs to call one model: versions, runtime, labels, input tensor. */
  modelInfo(name: string, version?: string): ModelInfo {
    checkModelName(name);
    if (version !== undefined) checkVersion(version);
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
        ...(m.manifest.ood
          ? { ood: { score: m.manifest.ood.score, threshold: m.manifest.ood.threshold, falseFlagRate: m.manifest.ood.falseFlagRate } }
          : {}),
      };
    } finally {
      lease.release();
    }
  }

  /** A file of a loaded model that a browser may fetch (LoadedModel.browserFile), or NOT_FOUND. */
  browserFile(name: string, version: string, file: string): string {
    checkModelName(name);
    checkVersion(version);
    const lease = this.deps.repository.acquire(name, version);
    try {
      const found = lease.model.browserFile(file);
      if (found === undefined) throw new ServiceError('NOT_FOUND', `model ${name}/${version} has no browser file "${file}"`);
      return found;
    } finally {
      lease.release();
    }
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

  classify(image: ImageInput, opts: ClassifyOptions): Promise<Classification> {
    return this.deps.classifier.classify(image, opts);
  }

  /** Many images, one model call. A bad image fails alone; the others are classified. */
  classifyBatch(images: ImageInput[], opts: ClassifyOptions): Promise<BatchItem[]> {
    return this.deps.classifier.classifyBatch(images, opts);
  }

  feedback(req: FeedbackRequest): Promise<FeedbackResult> {
    return this.deps.feedback.feedback(req);
  }

  /** The A/B report, accuracy, drift and shadow agreement of the experiment in force (see Monitor.report). */
  monitoringReport() {
    return this.deps.monitor.report(this.deps.experiment());
  }
}
