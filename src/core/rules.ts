/**
 * The request rules every transport and the model repository share, each
 * written once: what a model name and a version look like, how many images
 * a request may carry, the top-k and routing-key bounds. HTTP, gRPC, the
 * Open Inference Protocol, the A/B config and manifest validation all read
 * them from here.
 */
import { invalid, ServiceError } from './errors';

/** A model (or arm) name: also a directory name under MODEL_DIR, so no dots or slashes. */
export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
export const MODEL_NAME_RULE = 'a model name ([A-Za-z0-9_-], at most 63 characters)';
/** A model version: a positive integer, also a directory name. */
export const VERSION = /^[1-9][0-9]{0,8}$/;
export const VERSION_RULE = 'a positive integer';

export const DEFAULT_TOP_K = 3;
export const MAX_ROUTING_KEY_LENGTH = 256;

/** The request options every transport accepts (gRPC and OIP carry them in their own typed fields). */
export const OPTION_FIELDS = ['model', 'version', 'topK', 'routingKey', 'abstain'] as const;

/** A request may carry only the fields it documents: a misspelt option is refused, never ignored. */
export function checkKnownFields(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw invalid(`unknown field "${key.slice(0, 64)}" in ${where}; expected ${allowed.join(', ')}`);
  }
}

export function checkModelName(value: string, field = 'model'): string {
  if (!MODEL_NAME.test(value)) throw invalid(`${field} must be ${MODEL_NAME_RULE}`);
  return value;
}

export function checkVersion(value: string, field = 'version'): string {
  if (!VERSION.test(value)) throw invalid(`${field} must be ${VERSION_RULE}`);
  return value;
}

export function checkRoutingKey(value: string): string {
  if (value.length === 0 || value.length > MAX_ROUTING_KEY_LENGTH)
    throw invalid(`routing key must be 1..${MAX_ROUTING_KEY_LENGTH} characters`);
  return value;
}

export function checkTopK(value: number): number {
  if (!Number.isInteger(value) || value < 1) throw invalid('topK must be a positive integer');
  return value;
}

/** The one wording of the per-request image limit (CLASSIFY_MAX_IMAGES), whichever layer meets it first. */
export function tooManyImages(max: number, got?: number) {
  return invalid(`a request holds at most ${max} image${max === 1 ? '' : 's'}${got === undefined ? '' : `; got ${got}`}`);
}

/** The one wording of the per-image byte limit (MAX_IMAGE_BYTES), from the multipart parser or the decoder. */
export function imageTooLarge(max: number, got?: number) {
  return new ServiceError('PAYLOAD_TOO_LARGE', `an image may be at most ${max} bytes${got === undefined ? '' : `; got ${got}`}`);
}

export function checkImageCount(count: number, max: number): void {
  if (count === 0) throw invalid('a batch needs at least one image');
  if (count > max) throw tooManyImages(max, count);
}

/** A client's request id is echoed and logged when it looks like one; otherwise the service makes one. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdFrom(incoming: string | undefined, make: () => string): string {
  return incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : make();
}
