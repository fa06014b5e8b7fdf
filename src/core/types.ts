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

export interface Classification extends ClassPrediction {
  predictionId: string;
  model: string;
  version: string;
  arm: string;
  top: ClassPrediction[];
  timings: Timings;
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
}
