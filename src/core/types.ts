/** The request and answer shapes the DataPlane speaks; transports convert to and from them. */

/** The transport a request came by: a label of the request metrics and log lines. */
export type Transport = 'http' | 'grpc' | 'oip-http' | 'oip-grpc';

/**
 * One image as a client sent it: encoded bytes (PNG, JPEG, ...), 784 raw
 * pixels, or (Open Inference Protocol FP32 input) the model's input tensor
 * already normalized as the manifest prescribes.
 */
export type ImageInput =
  { kind: 'encoded'; bytes: Buffer } | { kind: 'pixels'; pixels: ArrayLike<number> } | { kind: 'normalized'; values: ArrayLike<number> };

export interface ClassifyOptions {
  /** Force a model by name (bypasses A/B routing). */
  model?: string;
  /** Force a version of that model; default: the highest loaded. */
  version?: string;
  /** Sticky A/B key (X-Routing-Key). */
  routingKey?: string;
  /** How many classes to return in `top` (default 3, at most the label count). */
  topK?: number;
  /**
   * Abstain rather than answer with a label: true abstains on an
   * out-of-distribution input or a confidence under ABSTAIN_MIN_CONFIDENCE,
   * false never abstains; unset, the server's ABSTAIN policy applies.
   */
  abstain?: boolean;
  /** The transport the request came by: set by the transport (for the payload log), never by a client. */
  transport?: Transport;
}

/** Why the service declined to answer with a label. */
export type AbstainReason = 'out-of-distribution' | 'low-confidence';

/** The out-of-distribution verdict on one input (models/ood.ts). */
export interface OodVerdict {
  /** Higher is more unusual. */
  score: number;
  /** The model's threshold, fitted on the validation split at its stated false-flag rate. */
  threshold: number;
  flagged: boolean;
}

export interface ClassPrediction {
  label: string;
  labelIndex: number;
  confidence: number;
}

export interface Timings {
  preprocessMs: number;
  inferenceMs: number;
  totalMs: number;
}

/**
 * One answer. An abstained answer keeps the scores and the top-k but has no
 * `label` or `labelIndex`, so a client cannot take it for an answer.
 */
export interface Classification {
  predictionId: string;
  model: string;
  version: string;
  arm: string;
  label?: string;
  labelIndex?: number;
  /** The top-1 class's calibrated confidence (also when abstained). */
  confidence: number;
  top: ClassPrediction[];
  timings: Timings;
  /** Present when the model ships an out-of-distribution score. */
  ood?: OodVerdict;
  abstained?: AbstainReason;
}

export type BatchItem = Classification | { error: { code: string; message: string } };

export interface FeedbackRequest {
  /** The predictionId of an earlier classification (a signed receipt). */
  predictionId: unknown;
  /** The true class: name or index. */
  label: unknown;
}

export interface FeedbackResult {
  /** False when this replica had already counted feedback for this prediction. */
  accepted: boolean;
  correct: boolean;
  model: string;
  version: string;
  arm: string;
  predicted: string;
  label: string;
  confidence: number;
  /** The prediction abstained: this label counts apart from the accuracy of answers. */
  abstained?: boolean;
}
