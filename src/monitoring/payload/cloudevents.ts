/**
 * The two CloudEvents (spec 1.0, HTTP binding, binary mode) KServe's
 * inference logger sends for a prediction, built for one record: the
 * request event and the response event share the prediction id as `ce-id`.
 *
 * KServe's extension attributes: `inferenceservicename` (this service's
 * name), `component` (`predictor`), `endpoint` (KServe's default or canary:
 * here the A/B arm that answered), `namespace` (when configured). This
 * service's own: `model`, `modelversion`, `transport`, `reason` (why it was
 * logged). Extension names are lowercase letters and digits, as the
 * CloudEvents spec requires.
 */
import { answerBody, inferenceRequestBody, type PayloadRecord } from './record';

export const REQUEST_EVENT_TYPE = 'org.kubeflow.serving.inference.request';
export const RESPONSE_EVENT_TYPE = 'org.kubeflow.serving.inference.response';

/** The attributes that are the service's, not the record's. */
export interface EventSource {
  /** `ce-source`, a URI reference naming this service (instance). */
  source: string;
  /** `ce-inferenceservicename`. */
  inferenceService: string;
  /** `ce-namespace`; left out when empty. */
  namespace?: string;
}

/** One event in binary mode: its HTTP headers (lowercase names) and body. */
export interface BinaryEvent {
  headers: Record<string, string>;
  body: string;
}

/**
 * A header value as the HTTP binding writes it: space, double quote,
 * percent and anything outside printable ASCII percent-encoded (as UTF-8).
 */
export function headerValue(value: string): string {
  return Array.from(value, (c) => (/^[\x21-\x7e]$/.test(c) && c !== '"' && c !== '%' ? c : percentEncode(c))).join('');
}

function percentEncode(c: string): string {
  return Array.from(Buffer.from(c, 'utf8'), (b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
}

function headers(record: PayloadRecord, type: string, from: EventSource): Record<string, string> {
  const attributes: Record<string, string> = {
    'content-type': 'application/json',
    'ce-specversion': '1.0',
    'ce-id': record.id,
    'ce-type': type,
    'ce-source': from.source,
    'ce-time': record.time.toISOString(),
    'ce-inferenceservicename': from.inferenceService,
    'ce-component': 'predictor',
    'ce-endpoint': record.arm,
    ...(from.namespace ? { 'ce-namespace': from.namespace } : {}),
    'ce-model': record.model,
    'ce-modelversion': record.version,
    'ce-transport': record.transport,
    'ce-reason': record.reason,
  };
  return Object.fromEntries(Object.entries(attributes).map(([name, value]) => [name, headerValue(value)]));
}

/** The request event, then the response event. */
export function cloudEvents(record: PayloadRecord, from: EventSource): [BinaryEvent, BinaryEvent] {
  return [
    { headers: headers(record, REQUEST_EVENT_TYPE, from), body: JSON.stringify(inferenceRequestBody(record)) },
    { headers: headers(record, RESPONSE_EVENT_TYPE, from), body: JSON.stringify(answerBody(record)) },
  ];
}
