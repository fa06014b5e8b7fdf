/** Turn HTTP request bodies (multipart, base64 JSON, pixel JSON) into DataPlane inputs. */
import { invalid, ServiceError } from '../../core/errors';
import type { ClassifyOptions, ImageInput } from '../../core/types';

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

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** One image from a JSON object holding either `image` (base64) or `pixels`. */
export function imageFromJson(obj: unknown, where: string): ImageInput {
  if (!isObject(obj)) throw invalid(`${where} must be an object with "image" (base64) or "pixels" (784 numbers)`);
  const hasImage = obj.image !== undefined;
  const hasPixels = obj.pixels !== undefined;
  if (hasImage === hasPixels) throw invalid(`${where} needs exactly one of "image" (base64) or "pixels" (784 numbers)`);
  if (hasImage) return { kind: 'encoded', bytes: decodeBase64(obj.image, `${where}.image`) };
  if (!Array.isArray(obj.pixels)) throw invalid(`${where}.pixels must be an array of numbers 0..255`);
  return { kind: 'pixels', pixels: obj.pixels as number[] };
}

function optionalString(v: unknown, name: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'number' && Number.isInteger(v)) return String(v);
  if (typeof v !== 'string') throw invalid(`${name} must be a string`);
  return v;
}

/** Options from body fields, query string and the X-Routing-Key header. */
export function optionsFrom(
  body: Record<string, unknown> | undefined,
  query: Record<string, unknown>,
  routingKeyHeader: string | undefined,
): Omit<ClassifyOptions, 'transport'> {
  const pick = (k: string) => optionalString(body?.[k] ?? query[k], k);
  const topKRaw = pick('topK');
  const topK = topKRaw === undefined ? undefined : Number(topKRaw);
  if (topK !== undefined && !Number.isInteger(topK)) throw invalid('topK must be an integer');
  // An empty X-Routing-Key header means no key, as an empty field does.
  return { model: pick('model'), version: pick('version'), routingKey: routingKeyHeader || pick('routingKey'), topK };
}

export function requireJsonObject(body: unknown): Record<string, unknown> {
  if (!isObject(body)) throw invalid('JSON body must be an object');
  return body;
}

export function unsupportedContentType(type: string | undefined): ServiceError {
  return new ServiceError(
    'UNSUPPORTED_MEDIA_TYPE',
    `content type ${type ?? '(none)'} is not accepted; send multipart/form-data with an "image" file, or application/json`,
  );
}
