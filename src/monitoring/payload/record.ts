/**
 * One logged prediction and its encodings: the request as the Open
 * Inference Protocol request that would reproduce it, the answer as the
 * service gave it, and the JSON line of the file sink (both in one).
 *
 * The request is carried as the OIP v2 REST body this service itself
 * accepts (`pixels`, UINT8, [1, height, width]): KServe's logger carries the
 * request body as the client sent it, and an OIP body is what a KServe
 * consumer knows how to read. A logged request can be posted back as is to
 * `/v2/models/{model}/versions/{version}/infer` to replay the prediction.
 */
import type { ClassPrediction, Transport } from '../../core/types';

/** Why a prediction was logged (`sampleReason` in ./sampling decides). */
export type PayloadReason = 'sampled' | 'flagged' | 'abstained' | 'low-confidence';

/** The model's input, small: Fashion-MNIST's 28 x 28 grey pixels, row-major, 0..255. */
export interface PayloadInput {
  width: number;
  height: number;
  pixels: Uint8Array;
}

/** The answer's JSON, as the service gave it (whatever else it holds is logged too). */
export interface PayloadAnswer {
  /** Absent when the service abstained. */
  label?: string;
  confidence: number;
  top: ClassPrediction[];
  /** The out-of-distribution verdict, when the model has one. */
  ood?: unknown;
  /** Why the service declined to answer with a label ("out-of-distribution", "low-confidence"), when it did. */
  abstained?: string;
  [field: string]: unknown;
}

/**
 * What `PayloadLogger.log` takes. The logger keeps the record until it is
 * written: the caller must not change it (its pixels in particular) after
 * handing it over.
 */
export interface PayloadRecord {
  /** The prediction id: the CloudEvents id shared by the request and response events. */
  id: string;
  /** When the prediction was made. */
  time: Date;
  model: string;
  version: string;
  arm: string;
  transport: Transport;
  input: PayloadInput;
  answer: PayloadAnswer;
  reason: PayloadReason;
}

/** The OIP v2 inference request that carries the record's input. */
export interface InferenceRequestBody {
  id: string;
  inputs: [{ name: 'pixels'; shape: [1, number, number]; datatype: 'UINT8'; data: number[] }];
}

/** The response event's body: the answer with the prediction's identity, like a /v1/classify answer. */
export type AnswerBody = { predictionId: string; model: string; version: string; arm: string } & PayloadAnswer;

/** The file sink's line: one record, its request and its response. */
export interface PayloadLine {
  id: string;
  time: string;
  model: string;
  version: string;
  arm: string;
  transport: Transport;
  reason: PayloadReason;
  request: InferenceRequestBody;
  response: AnswerBody;
}

export function inferenceRequestBody(record: PayloadRecord): InferenceRequestBody {
  const { width, height, pixels } = record.input;
  if (pixels.length !== width * height) {
    throw new Error(`payload input holds ${pixels.length} pixels, not ${width} x ${height}`);
  }
  return { id: record.id, inputs: [{ name: 'pixels', shape: [1, height, width], datatype: 'UINT8', data: Array.from(pixels) }] };
}

export function answerBody(record: PayloadRecord): AnswerBody {
  const { id, model, version, arm } = record;
  return { predictionId: id, model, version, arm, ...record.answer };
}

/** The record as one JSON line, newline included. */
export function payloadLine(record: PayloadRecord): string {
  const line: PayloadLine = {
    id: record.id,
    time: record.time.toISOString(),
    model: record.model,
    version: record.version,
    arm: record.arm,
    transport: record.transport,
    reason: record.reason,
    request: inferenceRequestBody(record),
    response: answerBody(record),
  };
  return `${JSON.stringify(line)}\n`;
}
