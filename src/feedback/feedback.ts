/**
 * Ground truth for an earlier prediction. The prediction id is a signed
 * receipt (receipts.ts) that any replica sharing the secret can verify;
 * feedback for an id this replica has already counted is answered but not
 * counted again. Accepted feedback feeds observed accuracy and the A/B counts.
 */
import { invalid, ServiceError } from '../core/errors';
import type { FeedbackRequest, FeedbackResult } from '../core/types';
import type { ModelRepository } from '../models/repository';
import type { ServiceMetrics } from '../monitoring/metrics';
import type { Monitor } from '../monitoring/monitor';
import type { Receipt, ReceiptSigner, SeenIds } from './receipts';

export interface FeedbackDeps {
  repository: ModelRepository;
  receipts: ReceiptSigner;
  /** Prediction ids whose feedback this replica has counted. */
  seen: SeenIds;
  monitor: Monitor;
  metrics: ServiceMetrics;
}

/** Why a feedback request was refused, by the code of its error (the label of classifier_feedback_rejected_total). */
const RECEIPT_REJECTION: Partial<Record<string, string>> = { PERMISSION_DENIED: 'tampered', FAILED_PRECONDITION: 'expired' };

export class FeedbackService {
  constructor(private readonly deps: FeedbackDeps) {}

  async feedback(req: FeedbackRequest): Promise<FeedbackResult> {
    const receipt = this.step('receipt', () => this.deps.receipts.verify(req.predictionId));
    const labels = this.step('unknown_model', () => this.labelsOf(receipt.model));
    const truth = this.step('bad_label', () => resolveLabel(req.label, labels));
    const accepted = this.deps.seen.add(req.predictionId as string);
    const correct = truth === receipt.labelIndex;
    this.deps.metrics.feedback.inc({
      model: receipt.model,
      arm: receipt.arm,
      outcome: !accepted ? 'duplicate' : receipt.abstained ? 'abstained' : correct ? 'correct' : 'incorrect',
    });
    if (accepted)
      this.deps.monitor.feedbackReceived({
        ...pick(receipt),
        confidence: receipt.confidence,
        correct,
        abstained: receipt.abstained === true,
      });
    return {
      accepted,
      correct,
      model: receipt.model,
      version: receipt.version,
      arm: receipt.arm,
      predicted: labels[receipt.labelIndex] ?? String(receipt.labelIndex),
      label: labels[truth],
      confidence: receipt.confidence,
      ...(receipt.abstained ? { abstained: true } : {}),
    };
  }

  /** Run one check; a failure is counted under its reason, then thrown. */
  private step<T>(reason: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      const outcome = reason === 'receipt' ? (RECEIPT_REJECTION[ServiceError.from(err).code] ?? 'malformed') : reason;
      this.deps.metrics.feedbackRejected.inc({ outcome });
      throw err;
    }
  }

  private labelsOf(model: string): readonly string[] {
    const loaded = this.deps.repository.latest(model);
    if (!loaded) throw new ServiceError('NOT_FOUND', `model ${model} of this prediction is not loaded here, so its labels are unknown`);
    return loaded.manifest.labels;
  }
}

function pick(r: Receipt) {
  return { model: r.model, version: r.version, arm: r.arm, experiment: r.experiment };
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
