/** Turn HTTP request bodies (multipart, base64 JSON, pixel JSON) into DataPlane inputs. */
import { invalid, ServiceError } from '../../core/errors';
import { checkKnownFields, OPTION_FIELDS } from '../../core/rules';
import type { ClassifyOptions, ImageInput, Transport } from '../../core/types';

type OptionField = (typeof OPTION_FIELDS)[number];

const DATA_URL = /^data:[a-z0-9.+/-]+;base64,/i;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** Decode standard or URL-safe base64 (a data: URL prefix is allowed); refuse anything else. */
export function decodeBase64(value: unknown, field: string): Buffer {
  if (typeof value !== 'string') throw invalid(`${field} must be a base64 string`);
  const text = value.replace(DATA_URL, '').replace(/\s+/g, '');
  if (text.replace(/=+$/, '').length === 0) throw invalid(`${field} is empty`);
  if (!(BASE64.test(text) || BASE64URL.test(text)) || text.replace(/=+$/, '').length % 4 === 1) {
    throw invalid(`${field} is not valid base64`);
  }
  return Buffer.from(text, BASE64.test(text) ? 'base64' : 'base64url');
}

/** A JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const IMAGE_FIELDS = ['image', 'pixels'] as const;

/**
 * One image from a JSON object holding either `image` (base64) or `pixels`;
 * `extra` names the other fields the object may carry (none for a batch
 * item; the options for a single-image body), anything else is refused.
 */
export function imageFromJson(obj: unknown, where: string, extra?: readonly string[]): ImageInput {
  if (!isObject(obj)) throw invalid(`${where} must be an object with "image" (base64) or "pixels" (784 numbers)`);
  if (extra !== undefined) checkKnownFields(obj, [...IMAGE_FIELDS, ...extra], where);
  const hasImage = obj.image !== undefined;
  const hasPixels = obj.pixels !== undefined;
  if (hasImage === hasPixels) throw invalid(`${where} needs exactly one of "image" (base64) or "pixels" (784 numbers)`);
  if (hasImage) return { kind: 'encoded', bytes: decodeBase64(obj.image, `${where}.image`) };
  // A Uint8Array is the fast JSON path's reading of an array of integers 0..255 (pixel-json.ts).
  if (!Array.isArray(obj.pixels) && !(obj.pixels instanceof Uint8Array))
    throw invalid(`${where}.pixels must be an array of numbers 0..255`);
  return { kind: 'pixels', pixels: obj.pixels as ArrayLike<number> };
}

/** One raw image: 28 x 28 grayscale bytes, row-major, a white item on black (Fashion-MNIST's form). */
export const RAW_IMAGE_BYTES = 28 * 28;

/**
 * The images of an application/octet-stream body: raw 28x28 grayscale
 * pixels, one image after another. Views into `body`. A length that is not
 * a whole number of images is refused, as no image could be told from the
 * next; an empty body is a batch without images.
 */
export function rawImages(body: Buffer): ImageInput[] {
  if (body.length % RAW_IMAGE_BYTES !== 0) {
    throw invalid(
      `an application/octet-stream body is raw 28x28 images of ${RAW_IMAGE_BYTES} bytes each; got ${body.length} bytes, ${Math.floor(body.length / RAW_IMAGE_BYTES)} images and ${body.length % RAW_IMAGE_BYTES} bytes over`,
    );
  }
  const images: ImageInput[] = [];
  for (let off = 0; off < body.length; off += RAW_IMAGE_BYTES)
    images.push({ kind: 'pixels', pixels: body.subarray(off, off + RAW_IMAGE_BYTES) });
  return images;
}

/** Where options come from: a JSON body keeps JSON types; form fields and the query string are text. */
export interface OptionSources {
  json?: Record<string, unknown>;
  form?: Record<string, unknown>;
  query: Record<string, unknown>;
}

/** One option's value, checked for its type: absent ('' and null count as absent), or a string / integer as the field takes. */
function option(v: unknown, name: OptionField, text: boolean): string | number | boolean | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (Array.isArray(v)) throw invalid(`${name} must be given once`);
  if (name === 'abstain') {
    if (typeof v === 'boolean' && !text) return v;
    if (text && (v === 'true' || v === 'false')) return v === 'true';
    throw invalid(`abstain must be ${text ? 'true or false' : 'a JSON boolean'}`);
  }
  if (name === 'topK') {
    if (typeof v === 'number' && !text && Number.isInteger(v)) return v;
    if (typeof v === 'string' && text && /^-?[0-9]{1,15}$/.test(v)) return Number(v);
    throw invalid(`topK must be an integer${text ? '' : ' (a JSON number)'}`);
  }
  if (typeof v === 'string') return v;
  // A version is a number in spirit: a JSON integer is taken as its digits.
  if (name === 'version' && !text && typeof v === 'number' && Number.isInteger(v)) return String(v);
  throw invalid(`${name} must be a string`);
}

/**
 * The classify options from a JSON body or form fields, then the query
 * string, then the X-Routing-Key header (which wins for the routing key).
 * Every source may carry only OPTION_FIELDS (the body's image fields are
 * checked by the route); wrong types and unknown fields are refused.
 */
export function optionsFrom(src: OptionSources, routingKeyHeader: string | undefined, transport: Transport = 'http'): ClassifyOptions {
  checkKnownFields(src.query, OPTION_FIELDS, 'the query string');
  if (src.form) checkKnownFields(src.form, OPTION_FIELDS, 'the form fields');
  // Every source is checked, even where another one wins.
  const pick = (k: OptionField) => {
    const fromBody = src.json ? option(src.json[k], k, false) : option(src.form?.[k], k, true);
    const fromQuery = option(src.query[k], k, true);
    return fromBody ?? fromQuery;
  };
  const routingKey = pick('routingKey') as string | undefined; // checked even where the header wins
  // An empty X-Routing-Key header means no key, as an empty field does.
  return {
    model: pick('model') as string | undefined,
    version: pick('version') as string | undefined,
    routingKey: routingKeyHeader || routingKey,
    topK: pick('topK') as number | undefined,
    abstain: pick('abstain') as boolean | undefined,
    transport,
  };
}

export const EMPTY_JSON_BODY = 'the JSON body is empty; send a JSON object';

/** Whether a request carries a body at all (a length above zero, or chunked), as the HTTP spec tells. */
export function hasBody(headers: { 'content-length'?: string; 'transfer-encoding'?: string }): boolean {
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
}

export function requireJsonObject(body: unknown): Record<string, unknown> {
  if (body === undefined) throw invalid(EMPTY_JSON_BODY);
  if (!isObject(body)) throw invalid('JSON body must be an object');
  return body;
}

/**
 * Whether the request declares this media type (parameters such as charset
 * or boundary aside), whether or not it has a body: an empty JSON body is a
 * JSON request with nothing in it, not an unsupported media type.
 */
export function declares(
  contentType: string | undefined,
  type: 'application/json' | 'multipart/form-data' | 'application/octet-stream',
): boolean {
  return (contentType ?? '').split(';')[0].trim().toLowerCase() === type;
}

/** What most routes take; the classify routes and OIP inference name more. */
export const MULTIPART_OR_JSON = 'multipart/form-data with an "image" file, or application/json';

export function unsupportedContentType(type: string | undefined, accepted = MULTIPART_OR_JSON): ServiceError {
  return new ServiceError('UNSUPPORTED_MEDIA_TYPE', `content type ${type ?? '(none)'} is not accepted; send ${accepted}`);
}
