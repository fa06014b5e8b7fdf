/**
 * Turns what a client sent into the raw 0..255 grayscale pixels a model
 * takes: pixel arrays are validated and used as they are; encoded images are
 * recognised by their signature (sniff.ts: nothing else reaches libvips),
 * decoded with sharp (EXIF orientation applied, alpha flattened onto white,
 * first frame of animations) and, unless they already are a Fashion-MNIST-
 * style image of the right size (dark background), converted as in
 * fashion-convert.ts.
 */
import sharp from 'sharp';
import { invalid, ServiceError } from '../core/errors';
import type { ImageInput } from '../core/types';
import { imageTooLarge } from '../core/rules';
import { toFashionMnist } from './fashion-convert';
import { cornerColor, type Gray, isLightBackground } from './fashion-steps';
import { type ImageFormat, sniffImage } from './sniff';

export interface PreprocessLimits {
  /** Largest encoded image accepted, in bytes. */
  maxImageBytes: number;
  /** Largest decoded image accepted, in pixels (width x height): the decompression-bomb guard. */
  maxImagePixels: number;
}

export interface Preprocessed {
  pixels: ArrayLike<number>;
  /** What happened to the input, for logs and tests. */
  path: 'pixels' | 'passthrough' | 'converted';
}

const FORMAT_NAMES: Record<ImageFormat, string> = { png: 'PNG', jpeg: 'JPEG', webp: 'WebP', gif: 'GIF', tiff: 'TIFF', heif: 'AVIF/HEIF' };
/** Decode large photos at about this size before trimming: sharp shrinks JPEGs on load, 4-5x faster. */
const WORKING_SIZE = 112;

export class Preprocessor {
  constructor(private readonly limits: PreprocessLimits) {}

  async toPixels(input: Exclude<ImageInput, { kind: 'normalized' }>, width: number, height: number): Promise<Preprocessed> {
    if (input.kind === 'pixels') return { pixels: validatePixels(input.pixels, width * height), path: 'pixels' };
    return this.decode(input.bytes, width, height);
  }

  private async decode(bytes: Buffer, width: number, height: number): Promise<Preprocessed> {
    if (bytes.length === 0) throw invalid('image is empty');
    if (bytes.length > this.limits.maxImageBytes) {
      throw imageTooLarge(this.limits.maxImageBytes, bytes.length);
    }
    const sniffed = sniffImage(bytes);
    if (!sniffed.image) {
      throw new ServiceError('UNSUPPORTED_MEDIA_TYPE', `the file is ${sniffed.what}; send a PNG, JPEG, WebP, GIF, TIFF or AVIF image`);
    }
    const named = FORMAT_NAMES[sniffed.format];
    let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
    try {
      // Header only: no pixel limit needed here, ours is checked just below with a clearer message.
      meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    } catch {
      throw invalid(`the ${named} file is corrupt or truncated: its header cannot be read`);
    }
    if (meta.format !== sniffed.format) {
      throw invalid(`the file starts like ${named} but does not decode as one`);
    }
    const w = meta.width ?? 0;
    const h = meta.pageHeight ?? meta.height ?? 0;
    if (w < 1 || h < 1) throw invalid('image has no pixels');
    if (w * h > this.limits.maxImagePixels) {
      throw new ServiceError('PAYLOAD_TOO_LARGE', `image is ${w}x${h} = ${w * h} pixels; the limit is ${this.limits.maxImagePixels}`);
    }
    const small = w <= WORKING_SIZE && h <= WORKING_SIZE;
    let gray: Gray;
    try {
      let pipeline = sharp(bytes, { limitInputPixels: this.limits.maxImagePixels, failOn: 'truncated', pages: 1 })
        .rotate()
        .flatten({ background: '#ffffff' });
      if (!small) pipeline = pipeline.resize(WORKING_SIZE, WORKING_SIZE, { fit: 'inside', withoutEnlargement: true });
      const { data, info } = await pipeline.toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
      if (info.channels !== 1) throw new Error(`decoded to ${info.channels} channels`);
      gray = { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
    } catch (err) {
      throw invalid(`the ${named} file is corrupt or truncated: ${sanitize((err as Error).message)}`);
    }
    if (gray.width === width && gray.height === height && !isLightBackground(cornerColor(gray))) {
      return { pixels: gray.data, path: 'passthrough' };
    }
    return { pixels: (await toFashionMnist(gray, width, height)).data, path: 'converted' };
  }
}

/** libvips messages can name temp paths; keep the first line, without paths. */
function sanitize(message: string): string {
  return message
    .split('\n')[0]
    .replace(/\/[^\s:]+/g, '<path>')
    .slice(0, 200);
}

/** A pixel array: exactly `expected` finite numbers in 0..255. */
export function validatePixels(pixels: unknown, expected: number): ArrayLike<number> {
  if (!Array.isArray(pixels) && !(pixels instanceof Float32Array) && !(pixels instanceof Uint8Array)) {
    throw invalid(`pixels must be an array of ${expected} numbers 0..255`);
  }
  const arr = pixels as ArrayLike<unknown>;
  if (arr.length !== expected) throw invalid(`pixels must have ${expected} values (28x28 grayscale), got ${arr.length}`);
  for (let i = 0; i < arr.length; i++) {
    const v = arr[i];
    if (typeof v !== 'number' || !(v >= 0 && v <= 255)) {
      throw invalid(`pixels[${i}] must be a number in 0..255, got ${describeValue(v)}`);
    }
  }
  return arr as ArrayLike<number>;
}

/** A short description of a bad value for an error message: numbers as they are, anything else by kind (never the whole thing). */
function describeValue(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return v.length <= 16 ? JSON.stringify(v) : `a string of ${v.length} characters`;
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return `a ${typeof v}`;
}
