/**
 * Where replayed images come from: the official Fashion-MNIST test set, or a
 * folder of labelled images. Walks the items in order (repeating), or draws
 * them with class weights when a shifted class mix is injected.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { readTestSet } from '../fashion-mnist';
import type { GrayImage } from './perturb';

export interface Sample {
  /** Position in the source (test-set index, or file order). */
  index: number;
  label: number;
  /** The image as grayscale pixels (for perturbations and PNG encoding). */
  pixels(): Promise<GrayImage>;
  /** The original file, when the source has one. */
  file?: string;
}

export interface SampleSource {
  readonly size: number;
  /** Items per class, by label index. */
  readonly classCounts: number[];
  at(i: number): Sample;
  ofClass(label: number, k: number): Sample;
}

function indexByClass(labels: ArrayLike<number>, classes: number): number[][] {
  const by: number[][] = Array.from({ length: classes }, () => []);
  for (let i = 0; i < labels.length; i++) by[labels[i]].push(i);
  return by;
}

export function testSetSource(classes: number): SampleSource {
  const { images, labels } = readTestSet();
  const size = images.rows * images.cols;
  const byClass = indexByClass(labels, classes);
  const sample = (i: number): Sample => ({
    index: i,
    label: labels[i],
    pixels: async () => ({ width: images.cols, height: images.rows, data: images.pixels.subarray(i * size, (i + 1) * size) }),
  });
  return {
    size: images.count,
    classCounts: byClass.map((c) => c.length),
    at: (i) => sample(i % images.count),
    ofClass: (label, k) => sample(byClass[label][k % byClass[label].length]),
  };
}

const IMAGE_FILE = /\.(png|jpe?g|webp|gif|tiff?|avif)$/i;

/**
 * A folder of images: `DIR/<class name>/*.png|jpg|...`, or files listed in
 * `DIR/labels.json` as `{"images": [{"file": "...", "label": "Bag"}]}` (the
 * format of the test fixtures).
 */
export function folderSource(dir: string, labelNames: readonly string[]): SampleSource {
  const labelOf = (name: string, where: string) => {
    const k = labelNames.indexOf(name);
    if (k < 0) throw new Error(`${where}: "${name}" is not one of the model's classes (${labelNames.join(', ')})`);
    return k;
  };
  const items: { file: string; label: number }[] = [];
  const listing = path.join(dir, 'labels.json');
  if (existsSync(listing)) {
    const parsed = JSON.parse(readFileSync(listing, 'utf8')) as { images?: { file: string; label: string }[] };
    if (!Array.isArray(parsed.images)) throw new Error(`${listing} has no "images" list`);
    for (const it of parsed.images) items.push({ file: path.join(dir, it.file), label: labelOf(it.label, listing) });
  } else {
    for (const name of readdirSync(dir).sort()) {
      const sub = path.join(dir, name);
      if (!statSync(sub).isDirectory()) continue;
      const label = labelOf(name, sub);
      for (const f of readdirSync(sub).sort()) if (IMAGE_FILE.test(f)) items.push({ file: path.join(sub, f), label });
    }
  }
  if (items.length === 0) throw new Error(`no labelled images in ${dir} (expected sub-folders named after the classes, or labels.json)`);
  const byClass = indexByClass(
    items.map((it) => it.label),
    labelNames.length,
  );
  const sample = (i: number): Sample => ({
    index: i,
    label: items[i].label,
    file: items[i].file,
    pixels: async () => {
      const { data, info } = await sharp(items[i].file).grayscale().raw().toBuffer({ resolveWithObject: true });
      return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, info.width * info.height) };
    },
  });
  return {
    size: items.length,
    classCounts: byClass.map((c) => c.length),
    at: (i) => sample(i % items.length),
    ofClass: (label, k) => {
      if (byClass[label].length === 0) throw new Error(`${dir} has no image of class ${labelNames[label]}`);
      return sample(byClass[label][k % byClass[label].length]);
    },
  };
}

/**
 * The sequence a replay sends: the source in order, or, with class weights,
 * classes drawn by weight (classes absent from `weights` weigh 1).
 */
export class SampleStream {
  private readonly next = new Map<number, number>();
  private readonly cumulative: number[] | null;

  constructor(
    private readonly source: SampleSource,
    private readonly random: () => number,
    weights?: number[],
  ) {
    if (!weights) {
      this.cumulative = null;
      return;
    }
    // A class the source lacks cannot be drawn whatever its weight.
    const w = weights.map((x, k) => (source.classCounts[k] > 0 ? x : 0));
    let sum = 0;
    this.cumulative = w.map((x) => (sum += x));
    if (sum <= 0) throw new Error('the class weights leave no class to draw');
  }

  /** The i-th sample to send. */
  sample(i: number): Sample {
    if (!this.cumulative) return this.source.at(i);
    const total = this.cumulative[this.cumulative.length - 1];
    const r = this.random() * total;
    let label = this.cumulative.findIndex((c) => r < c);
    if (label < 0) label = this.cumulative.length - 1;
    const k = this.next.get(label) ?? 0;
    this.next.set(label, k + 1);
    return this.source.ofClass(label, k);
  }
}

/** Class weights from `{name: weight}`; unnamed classes weigh 1. */
export function classWeights(mix: Record<string, number>, labelNames: readonly string[]): number[] {
  const w = labelNames.map(() => 1);
  for (const [name, weight] of Object.entries(mix)) {
    const k = labelNames.indexOf(name);
    if (k < 0) throw new Error(`--drift mix: "${name}" is not one of the model's classes (${labelNames.join(', ')})`);
    w[k] = weight;
  }
  return w;
}
