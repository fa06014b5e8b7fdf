/** Read the official Fashion-MNIST idx files (Debian's dataset-fashion-mnist) for the offline tools. */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

export const DEFAULT_DATASET_DIR = '/usr/share/datasets/fashion-mnist';

export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  pixels: Uint8Array; // count * rows * cols
}

function readIdx(dir: string, stem: string, expectedSha?: string): Buffer {
  const gz = path.join(dir, `${stem}.gz`);
  const plain = path.join(dir, stem);
  let raw: Buffer;
  if (existsSync(gz)) raw = gunzipSync(readFileSync(gz));
  else if (existsSync(plain)) raw = readFileSync(plain);
  else throw new Error(`${stem}(.gz) not found in ${dir}: install the apt package dataset-fashion-mnist or set FASHION_MNIST_DIR`);
  if (expectedSha) {
    const actual = createHash('sha256').update(raw).digest('hex');
    if (actual !== expectedSha) throw new Error(`${stem} in ${dir} is not the official release (sha256 ${actual})`);
  }
  return raw;
}

function header(raw: Buffer, ndim: number): number[] {
  if (raw[0] !== 0 || raw[1] !== 0 || raw[2] !== 8 || raw[3] !== ndim) throw new Error('not an idx file of unsigned bytes');
  return Array.from({ length: ndim }, (_, i) => raw.readUInt32BE(4 + 4 * i));
}

export function readTestSet(
  dir = process.env.FASHION_MNIST_DIR || DEFAULT_DATASET_DIR,
  sha?: Record<string, string>,
): { images: IdxImages; labels: Uint8Array } {
  const imgRaw = readIdx(dir, 't10k-images-idx3-ubyte', sha?.['test-images']);
  const lblRaw = readIdx(dir, 't10k-labels-idx1-ubyte', sha?.['test-labels']);
  const [count, rows, cols] = header(imgRaw, 3);
  const [nLabels] = header(lblRaw, 1);
  if (nLabels !== count) throw new Error(`test set has ${count} images but ${nLabels} labels`);
  return {
    images: { count, rows, cols, pixels: new Uint8Array(imgRaw.buffer, imgRaw.byteOffset + 16, count * rows * cols) },
    labels: new Uint8Array(lblRaw.buffer, lblRaw.byteOffset + 8, count),
  };
}
