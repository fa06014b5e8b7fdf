/**
 * The pure steps of the Fashion-MNIST conversion (Xiao et al. 2017,
 * arXiv:1708.07747, section 2) over raw 8-bit grayscale buffers: find the
 * background, trim to the item, fit the longest edge, pad centered, negate.
 * No I/O and no native code, so the browser's try-it page runs the same
 * steps as the service (fashion-convert.ts adds the resize and sharpen).
 */
export interface Gray {
  data: Uint8Array;
  width: number;
  height: number;
}

const TRIM_TOLERANCE = 0.05 * 255;

/** The background: median of the four corner pixels (one noisy corner cannot flip it). */
export function cornerColor(img: Gray): number {
  const { data, width: w, height: h } = img;
  const c = [data[0], data[w - 1], data[(h - 1) * w], data[h * w - 1]].sort((a, b) => a - b);
  return (c[1] + c[2]) / 2;
}

/** Bounding box of the pixels farther than 5% of full intensity from `background`. */
export function trimBox(img: Gray, background: number): { left: number; top: number; width: number; height: number } {
  const { data, width: w, height: h } = img;
  let top = h;
  let bottom = -1;
  let left = w;
  let right = -1;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      if (Math.abs(data[row + x] - background) > TRIM_TOLERANCE) {
        if (y < top) top = y;
        if (y > bottom) bottom = y;
        if (x < left) left = x;
        if (x > right) right = x;
      }
    }
  }
  if (bottom < 0) return { left: 0, top: 0, width: w, height: h }; // blank image: nothing to trim to
  return { left, top, width: right - left + 1, height: bottom - top + 1 };
}

export function crop(img: Gray, box: { left: number; top: number; width: number; height: number }): Gray {
  const out = new Uint8Array(box.width * box.height);
  for (let y = 0; y < box.height; y++) {
    const src = (box.top + y) * img.width + box.left;
    out.set(img.data.subarray(src, src + box.width), y * box.width);
  }
  return { data: out, width: box.width, height: box.height };
}

/** Size with the longest edge equal to `target`, aspect ratio kept, no edge below 1. */
export function fitLongestEdge(width: number, height: number, target: number): { width: number; height: number } {
  const scale = target / Math.max(width, height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** Center `img` on a `size` x `size` canvas filled with `background`. */
export function padCenter(img: Gray, width: number, height: number, background: number): Gray {
  const out = new Uint8Array(width * height).fill(Math.round(background));
  const dx = Math.floor((width - img.width) / 2);
  const dy = Math.floor((height - img.height) / 2);
  for (let y = 0; y < img.height; y++) out.set(img.data.subarray(y * img.width, (y + 1) * img.width), (y + dy) * width + dx);
  return { data: out, width, height };
}

export function negate(img: Gray): Gray {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = 255 - img.data[i];
  return { data: out, width: img.width, height: img.height };
}

/** A light background means a catalog photo (dark item on white): it gets negated. */
export function isLightBackground(background: number): boolean {
  return background > 127;
}
