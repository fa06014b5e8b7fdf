/**
 * The Fashion-MNIST conversion (Xiao et al. 2017, arXiv:1708.07747, section 2)
 * on a small grayscale image: trim edges close to the corner color (within
 * 5% of the maximum intensity), resize the longest edge to the target by
 * subsampling, sharpen (Gaussian, sigma 1), pad the shortest edge centered,
 * and negate so the item is light on black. The pure steps live in
 * fashion-steps.ts (shared with the browser page); the resize and sharpen
 * here use sharp.
 */
import sharp from 'sharp';
import { crop, cornerColor, fitLongestEdge, type Gray, isLightBackground, negate, padCenter, trimBox } from './fashion-steps';

export async function resizeAndSharpen(img: Gray, width: number, height: number): Promise<Gray> {
  const { data, info } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 1 } })
    .resize(width, height, { kernel: 'nearest', fit: 'fill' })
    .sharpen({ sigma: 1 })
    .toColourspace('b-w')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1) throw new Error(`sharpen returned ${info.channels} channels`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

/** The whole conversion, to `width` x `height` with the item light on black. */
export async function toFashionMnist(img: Gray, width: number, height: number): Promise<Gray> {
  const background = cornerColor(img);
  const trimmed = crop(img, trimBox(img, background));
  const size = fitLongestEdge(trimmed.width, trimmed.height, Math.max(width, height));
  const resized = await resizeAndSharpen(trimmed, Math.min(size.width, width), Math.min(size.height, height));
  const padded = padCenter(resized, width, height, background);
  return isLightBackground(background) ? negate(padded) : padded;
}
