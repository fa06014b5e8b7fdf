/** Generated test images: catalog-style photos and hostile files, made with sharp at test time. */
import sharp from 'sharp';
import * as zlib from 'node:zlib';

export interface Rect {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** A color photo: light background, a dark colored item at `item`, some noise so JPEG has texture. */
export function catalogRaw(width: number, height: number, item: Rect, background = [250, 250, 248], color = [30, 40, 90]): Buffer {
  const buf = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inside = x >= item.left && x < item.left + item.width && y >= item.top && y < item.top + item.height;
      const c = inside ? color : background;
      const o = (y * width + x) * 3;
      buf[o] = c[0];
      buf[o + 1] = c[1];
      buf[o + 2] = c[2];
    }
  }
  return buf;
}

export function encode(raw: Buffer, width: number, height: number, channels: 1 | 3 | 4 = 3) {
  return sharp(raw, { raw: { width, height, channels } });
}

export async function catalogPhoto(
  format: 'jpeg' | 'png' | 'webp' | 'tiff' | 'avif' | 'gif' = 'jpeg',
  width = 800,
  height = 1000,
): Promise<Buffer> {
  // An item in the upper-left part of the frame, taller than wide, like a dress photo.
  const item = { left: 90, top: 120, width: Math.round(width * 0.3), height: Math.round(height * 0.55) };
  return encode(catalogRaw(width, height, item), width, height)
    .toFormat(format)
    .toBuffer();
}

/** Bounding box of pixels brighter than `threshold` in a 28x28 image. */
export function brightBox(pixels: ArrayLike<number>, size = 28, threshold = 64): Rect & { count: number } {
  let top = size;
  let left = size;
  let bottom = -1;
  let right = -1;
  let count = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (pixels[y * size + x] > threshold) {
        count++;
        top = Math.min(top, y);
        bottom = Math.max(bottom, y);
        left = Math.min(left, x);
        right = Math.max(right, x);
      }
    }
  }
  return { left, top, width: right - left + 1, height: bottom - top + 1, count };
}

/** A PNG whose header declares `width` x `height` pixels but carries almost no data: a decompression bomb probe. */
export function pngDeclaring(width: number, height: number): Buffer {
  const { crc32 } = zlib as { crc32?: (b: Buffer) => number };
  const crc = (b: Buffer): number => {
    if (crc32) return crc32(b) >>> 0;
    let c = ~0;
    for (const byte of b) {
      c ^= byte;
      for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
    }
    return ~c >>> 0;
  };
  const chunk = (type: string, body: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const tb = Buffer.concat([Buffer.from(type, 'ascii'), body]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(tb));
    return Buffer.concat([len, tb, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
