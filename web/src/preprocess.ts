/**
 * The service's preprocessing (src/preprocess/preprocessor.ts), redone in
 * the browser: decode with createImageBitmap (EXIF orientation applied, no
 * colour-space conversion), flatten alpha onto white, shrink photos larger
 * than the service's working size, convert to grayscale with libvips' b-w
 * formula (Rec. 709 luminance in linear light, re-encoded to sRGB), and then
 * either pass a 28x28 dark-background image through as it is or run the
 * Fashion-MNIST conversion with the very steps the service runs
 * (src/preprocess/fashion-steps.ts, bundled in).
 *
 * Two steps differ from the service, so the photo path is an approximation:
 * the service shrinks large photos with libvips, and resizes the trimmed
 * item by nearest-neighbour subsampling followed by a Gaussian sharpen
 * (sigma 1); here the first is a canvas resize with the browser's
 * high-quality smoothing, the second a canvas resize with smoothing off
 * (nearest-neighbour, though not necessarily the same pixels) and no
 * sharpen. A 28x28 Fashion-MNIST image (the passthrough path) is the same
 * pixels in both.
 */
import {
  cornerColor,
  crop,
  fitLongestEdge,
  type Gray,
  isLightBackground,
  negate,
  padCenter,
  trimBox,
} from '../../src/preprocess/fashion-steps';

/** preprocessor.ts's WORKING_SIZE: photos larger than this are shrunk to fit inside it before trimming. */
const WORKING_SIZE = 112;

export interface BrowserPixels {
  gray: Gray;
  /** As in the service: `passthrough` for a 28x28 image with a dark background, else `converted`. */
  path: 'passthrough' | 'converted';
  /** The decoded image's size. */
  source: { width: number; height: number };
}

/** sRGB 8-bit to linear light. */
const TO_LINEAR = Float64Array.from({ length: 256 }, (_, i) => {
  const c = i / 255;
  return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
});

function toSrgb8(y: number): number {
  const v = y <= 0.0031308 ? 12.92 * y : 1.055 * Math.pow(y, 1 / 2.4) - 0.055;
  return Math.max(0, Math.min(255, Math.round(v * 255)));
}

/** RGBA (opaque) to one 8-bit gray channel, as libvips' sRGB -> b-w does. */
export function luminance(rgba: Uint8ClampedArray, width: number, height: number): Gray {
  const out = new Uint8Array(width * height);
  for (let i = 0, j = 0; i < out.length; i++, j += 4) {
    const r = rgba[j];
    const g = rgba[j + 1];
    const b = rgba[j + 2];
    // Gray pixels stay exactly as they are (the formula is the identity on them, up to rounding).
    out[i] = r === g && g === b ? r : toSrgb8(0.2126 * TO_LINEAR[r] + 0.7152 * TO_LINEAR[g] + 0.0722 * TO_LINEAR[b]);
  }
  return { data: out, width, height };
}

function canvas2d(width: number, height: number): { canvas: HTMLCanvasElement; ctx: CanvasRenderingContext2D } {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new Error('this browser gives no 2D canvas');
  return { canvas, ctx };
}

/** Decode `file` to gray pixels at the service's working size, alpha flattened onto white. */
async function decodeGray(file: Blob): Promise<{ gray: Gray; source: { width: number; height: number } }> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
  } catch {
    throw new Error('the browser cannot decode this file as an image');
  }
  try {
    const { width: w, height: h } = bitmap;
    const small = w <= WORKING_SIZE && h <= WORKING_SIZE;
    const scale = small ? 1 : Math.min(WORKING_SIZE / w, WORKING_SIZE / h);
    const tw = Math.max(1, Math.round(w * scale));
    const th = Math.max(1, Math.round(h * scale));
    const { ctx } = canvas2d(tw, th);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, tw, th);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bitmap, 0, 0, tw, th);
    const rgba = ctx.getImageData(0, 0, tw, th).data;
    return { gray: luminance(rgba, tw, th), source: { width: w, height: h } };
  } finally {
    bitmap.close();
  }
}

/**
 * A gray image resized by the canvas with smoothing off: nearest-neighbour,
 * standing in for the service's nearest-neighbour resize and sharpen (without
 * the sharpen it agrees with the service more often than a smoothed resize).
 */
function canvasResize(img: Gray, width: number, height: number): Gray {
  if (img.width === width && img.height === height) return img;
  const src = canvas2d(img.width, img.height);
  const rgba = new ImageData(img.width, img.height);
  for (let i = 0, j = 0; i < img.data.length; i++, j += 4) {
    rgba.data[j] = rgba.data[j + 1] = rgba.data[j + 2] = img.data[i];
    rgba.data[j + 3] = 255;
  }
  src.ctx.putImageData(rgba, 0, 0);
  const dst = canvas2d(width, height);
  dst.ctx.imageSmoothingEnabled = false;
  dst.ctx.drawImage(src.canvas, 0, 0, width, height);
  const out = dst.ctx.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = out[i * 4];
  return { data, width, height };
}

/** The model's `width` x `height` input pixels for `file`, light item on black. */
export async function toModelPixels(file: Blob, width: number, height: number): Promise<BrowserPixels> {
  const { gray, source } = await decodeGray(file);
  const background = cornerColor(gray);
  if (gray.width === width && gray.height === height && !isLightBackground(background)) {
    return { gray, path: 'passthrough', source };
  }
  // fashion-convert.ts's toFashionMnist, with the canvas resize in place of sharp's.
  const trimmed = crop(gray, trimBox(gray, background));
  const size = fitLongestEdge(trimmed.width, trimmed.height, Math.max(width, height));
  const resized = canvasResize(trimmed, Math.min(size.width, width), Math.min(size.height, height));
  const padded = padCenter(resized, width, height, background);
  return { gray: isLightBackground(background) ? negate(padded) : padded, path: 'converted', source };
}

/** Draw gray pixels onto a canvas (its CSS scales it up, pixelated). */
export function drawGray(canvas: HTMLCanvasElement, img: Gray): void {
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const rgba = new ImageData(img.width, img.height);
  for (let i = 0, j = 0; i < img.data.length; i++, j += 4) {
    rgba.data[j] = rgba.data[j + 1] = rgba.data[j + 2] = img.data[i];
    rgba.data[j + 3] = 255;
  }
  ctx.putImageData(rgba, 0, 0);
}
