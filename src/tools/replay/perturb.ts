/**
 * The drift a replay can inject, applied to a grayscale image: rotation,
 * blur, noise, brightness, and re-shooting it as an unnegated catalog photo
 * (dark item on white, upscaled, JPEG). Deterministic for a given seed, so a
 * replay is repeatable.
 */
import sharp from 'sharp';
import type { DriftSpec } from './options';

export interface GrayImage {
  width: number;
  height: number;
  /** width * height values 0..255, row-major. */
  data: Uint8Array;
}

/** mulberry32: a small seeded generator, good enough for sampling traffic. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(random: () => number): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** The background an image is padded with: the mean of its four corners. */
export function background(img: GrayImage): number {
  const { width: w, height: h, data } = img;
  return Math.round((data[0] + data[w - 1] + data[(h - 1) * w] + data[h * w - 1]) / 4);
}

/** Rotate about the centre by `degrees` (counter-clockwise), bilinear, same size, padded with the background. */
export function rotate(img: GrayImage, degrees: number): GrayImage {
  const { width: w, height: h, data } = img;
  const out = new Uint8Array(w * h);
  const fill = background(img);
  const rad = (degrees * Math.PI) / 180;
  const cos = Math.cos(rad);
  const sin = Math.sin(rad);
  const cx = (w - 1) / 2;
  const cy = (h - 1) / 2;
  const at = (x: number, y: number) => (x < 0 || y < 0 || x >= w || y >= h ? fill : data[y * w + x]);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // Inverse mapping: where in the source does this output pixel come from?
      const dx = x - cx;
      const dy = y - cy;
      const sx = cos * dx - sin * dy + cx;
      const sy = sin * dx + cos * dy + cy;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      const v =
        at(x0, y0) * (1 - fx) * (1 - fy) + at(x0 + 1, y0) * fx * (1 - fy) + at(x0, y0 + 1) * (1 - fx) * fy + at(x0 + 1, y0 + 1) * fx * fy;
      out[y * w + x] = Math.round(v);
    }
  }
  return { width: w, height: h, data: out };
}

export function addNoise(img: GrayImage, std: number, random: () => number): GrayImage {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.min(255, Math.max(0, Math.round(img.data[i] + std * gaussian(random))));
  return { ...img, data: out };
}

export function scaleBrightness(img: GrayImage, factor: number): GrayImage {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.min(255, Math.round(img.data[i] * factor));
  return { ...img, data: out };
}

export async function blur(img: GrayImage, sigma: number): Promise<GrayImage> {
  const data = await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.length), {
    raw: { width: img.width, height: img.height, channels: 1 },
  })
    .blur(sigma)
    .toColourspace('b-w') // sharp would otherwise hand back three channels
    .raw()
    .toBuffer();
  return { ...img, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Pixel-level perturbations of the spec, in a fixed order (geometry, optics, sensor, exposure). */
export async function perturb(img: GrayImage, spec: DriftSpec, random: () => number): Promise<GrayImage> {
  let out = img;
  if (spec.rotateDegrees) out = rotate(out, spec.rotateDegrees);
  if (spec.blurSigma) out = await blur(out, spec.blurSigma);
  if (spec.noiseStd) out = addNoise(out, spec.noiseStd, random);
  if (spec.brightness !== undefined) out = scaleBrightness(out, spec.brightness);
  return out;
}

const raw = (img: GrayImage) =>
  sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.length), { raw: { width: img.width, height: img.height, channels: 1 } });

export async function encodePng(img: GrayImage): Promise<Buffer> {
  return raw(img).toColourspace('b-w').png({ compressionLevel: 1 }).toBuffer();
}

/**
 * The image as a shop would photograph it: intensities negated (a dark item
 * on a white background), upscaled to about 280 px on its longest edge with a
 * white margin, JPEG. The service must convert it back the way Fashion-MNIST
 * was made; what survives that round trip is the drift.
 */
export async function encodeCatalogPhoto(img: GrayImage): Promise<Buffer> {
  const negated = new Uint8Array(img.data.length);
  for (let i = 0; i < negated.length; i++) negated[i] = 255 - img.data[i];
  const scale = Math.max(1, Math.round(280 / Math.max(img.width, img.height)));
  const margin = Math.round(0.1 * scale * Math.max(img.width, img.height));
  return raw({ ...img, data: negated })
    .resize(img.width * scale, img.height * scale, { kernel: 'lanczos3' })
    .extend({ top: margin, bottom: margin, left: margin, right: margin, background: { r: 255, g: 255, b: 255 } })
    .jpeg({ quality: 85 })
    .toBuffer();
}
