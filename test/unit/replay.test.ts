/** The replay tool's pieces: options, drift perturbations, sampling with a shifted class mix. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { OptionsError, parseDrift, parseOptions } from '../../src/tools/replay/options';
import {
  addNoise,
  background,
  blur,
  encodeCatalogPhoto,
  type GrayImage,
  perturb,
  rotate,
  scaleBrightness,
  seededRandom,
} from '../../src/tools/replay/perturb';
import { classWeights, type SampleSource, SampleStream } from '../../src/tools/replay/source';

/** A 28x28 white-on-black bar, off centre, as Fashion-MNIST items are drawn. */
function bar(): GrayImage {
  const data = new Uint8Array(28 * 28);
  for (let y = 4; y < 24; y++) for (let x = 10; x < 14; x++) data[y * 28 + x] = 200;
  return { width: 28, height: 28, data };
}

const sum = (img: GrayImage) => img.data.reduce((a, b) => a + b, 0);

describe('replay options', () => {
  it('has defaults that replay the test set over HTTP with feedback', () => {
    const o = parseOptions([]);
    assert.equal(o.transport, 'http');
    assert.equal(o.target, 'http://127.0.0.1:8080');
    assert.equal(o.feedbackShare, 0.5);
    assert.deepEqual(o.drift, {});
  });

  it('reads every flag', () => {
    const o = parseOptions([
      '--grpc',
      'localhost:50051',
      '--rate',
      '0',
      '--count',
      '10',
      '--duration',
      '5',
      '--concurrency',
      '4',
      '--keys',
      '7',
      '--feedback',
      '1',
      '--feedback-delay',
      '0',
      '--drift',
      'catalog,rotate:-20,blur:1.5,noise:30,brightness:0.6,mix:Bag=5+Sandal=2',
      '--drift-from',
      '30s',
      '--seed',
      '9',
      '--json',
      '--quiet',
    ]);
    assert.equal(o.transport, 'grpc');
    assert.equal(o.target, 'localhost:50051');
    assert.deepEqual(
      [
        o.rate,
        o.count,
        o.durationSeconds,
        o.concurrency,
        o.keys,
        o.feedbackShare,
        o.feedbackDelaySeconds,
        o.driftAfterSeconds,
        o.seed,
        o.json,
        o.quiet,
      ],
      [0, 10, 5, 4, 7, 1, 0, 30, 9, true, true],
    );
    assert.deepEqual(o.drift, {
      catalog: true,
      rotateDegrees: -20,
      blurSigma: 1.5,
      noiseStd: 30,
      brightness: 0.6,
      mix: { Bag: 5, Sandal: 2 },
    });
    assert.equal(parseOptions(['--drift', 'noise:10', '--drift-from', '250']).driftFromRequest, 250);
    assert.equal(parseOptions(['--offset', '9000']).offset, 9000);
  });

  it('names the flag that is wrong', () => {
    const bad: [string[], RegExp][] = [
      [['--rate', '-1'], /--rate -1 must be a number/],
      [['--count', '1.5'], /--count 1.5 must be an integer/],
      [['--feedback', '2'], /--feedback 2/],
      [['--url', 'localhost:8080'], /--url .* must look like http/],
      [['--grpc', 'http://x:1'], /--grpc .* must be host:port/],
      [['--drift', 'fog'], /unknown perturbation "fog"/],
      [['--drift', 'mix:Bag'], /--drift mix Bag/],
      [['--drift-from', '10'], /--drift-from needs --drift/],
      [['--count'], /--count needs a value/],
      [['--frobnicate'], /unknown option --frobnicate/],
    ];
    for (const [argv, message] of bad)
      assert.throws(
        () => parseOptions(argv),
        (e: Error) => e instanceof OptionsError && message.test(e.message),
        argv.join(' '),
      );
    assert.throws(() => parseDrift('blur:0'), /blur/);
  });
});

describe('drift perturbations', () => {
  it('rotation by 0 is the identity, by 90 turns a vertical bar horizontal', () => {
    const img = bar();
    assert.deepEqual(rotate(img, 0).data, img.data);
    const turned = rotate(img, 90);
    // The bar covered 20 rows x 4 columns; turned it covers 4 rows x 20 columns.
    const rowsLit = new Set<number>();
    const colsLit = new Set<number>();
    turned.data.forEach((v, i) => {
      if (v > 100) {
        rowsLit.add(Math.floor(i / 28));
        colsLit.add(i % 28);
      }
    });
    assert.equal(rowsLit.size, 4);
    assert.equal(colsLit.size, 20);
    assert.ok(Math.abs(sum(turned) - sum(img)) / sum(img) < 0.01, 'a right-angle turn keeps the mass');
  });

  it('pads a rotated catalog photo with its own white background', () => {
    const white = { width: 28, height: 28, data: new Uint8Array(28 * 28).fill(255) };
    white.data[14 * 28 + 14] = 0;
    assert.equal(background(white), 255);
    const r = rotate(white, 45);
    assert.equal(r.data[0], 255);
  });

  it('noise is seeded, centred and of the asked spread; brightness scales and saturates', () => {
    const grey = { width: 28, height: 28, data: new Uint8Array(28 * 28).fill(128) };
    const a = addNoise(grey, 20, seededRandom(3));
    assert.deepEqual(addNoise(grey, 20, seededRandom(3)).data, a.data);
    const mean = sum(a) / a.data.length;
    const sd = Math.sqrt(a.data.reduce((s, v) => s + (v - mean) ** 2, 0) / a.data.length);
    assert.ok(Math.abs(mean - 128) < 2, `mean ${mean}`);
    assert.ok(Math.abs(sd - 20) < 2, `sd ${sd}`);
    assert.equal(scaleBrightness(grey, 0.5).data[0], 64);
    assert.equal(scaleBrightness(grey, 3).data[0], 255);
  });

  it('blur spreads the bar and keeps its mass', async () => {
    const img = bar();
    const b = await blur(img, 1.5);
    assert.ok(b.data[14 * 28 + 8] > 0, 'light reaches outside the bar');
    assert.ok(b.data[14 * 28 + 11] < 200, 'the bar itself dims');
    assert.ok(Math.abs(sum(b) - sum(img)) / sum(img) < 0.05);
  });

  it('applies the spec in order and leaves the input alone', async () => {
    const img = bar();
    const before = Uint8Array.from(img.data);
    const out = await perturb(img, { rotateDegrees: 90, brightness: 0.5 }, seededRandom(1));
    assert.deepEqual(img.data, before);
    assert.deepEqual(out.data, scaleBrightness(rotate(img, 90), 0.5).data);
  });

  it('re-shoots an image as a catalog photo: JPEG, about 280 px, dark item on white', async () => {
    const jpeg = await encodeCatalogPhoto(bar());
    const meta = await sharp(jpeg).metadata();
    assert.equal(meta.format, 'jpeg');
    assert.ok(meta.width! >= 280 && meta.width! < 400, `width ${meta.width}`);
    const { data, info } = await sharp(jpeg).grayscale().raw().toBuffer({ resolveWithObject: true });
    assert.ok(data[0] > 240, 'white corner');
    // 28 px scaled 10x to 280, with a white margin of a tenth of that (28 px) on every side.
    const scale = 10;
    const margin = 28;
    assert.deepEqual([info.width, info.height], [28 * scale + 2 * margin, 28 * scale + 2 * margin]);
    // The bar's middle (column 11.5, row 14 of 28) in the photo's coordinates.
    const centre = data[Math.round(margin + 14 * scale) * info.width + Math.round(margin + 11.5 * scale)];
    assert.ok(centre < 100, `the item is dark (${centre})`);
    // Beside the item, inside the margin: white.
    const besideItem = data[Math.round(margin + 14 * scale) * info.width + Math.round(margin / 2)];
    assert.ok(besideItem > 240, `the margin is white (${besideItem})`);
  });
});

describe('sampling', () => {
  const labels = ['a', 'b', 'c'];
  const source: SampleSource = {
    size: 30,
    classCounts: [10, 10, 10],
    at: (i) => ({ index: i % 30, label: (i % 30) % 3, pixels: async () => bar() }),
    ofClass: (label, k) => ({ index: (k % 10) * 3 + label, label, pixels: async () => bar() }),
  };

  it('walks the source in order without a class mix', () => {
    const s = new SampleStream(source, seededRandom(1));
    assert.deepEqual(
      [0, 1, 2, 31].map((i) => s.sample(i).index),
      [0, 1, 2, 1],
    );
  });

  it('draws classes by weight with a class mix, cycling within each class', () => {
    const s = new SampleStream(source, seededRandom(1), classWeights({ a: 8, c: 0 }, labels));
    const seen = [0, 0, 0];
    const firstOfA: number[] = [];
    for (let i = 0; i < 9000; i++) {
      const x = s.sample(i);
      seen[x.label]++;
      if (x.label === 0 && firstOfA.length < 11) firstOfA.push(x.index);
    }
    assert.equal(seen[2], 0, 'weight 0 is never drawn');
    assert.ok(Math.abs(seen[0] / 9000 - 8 / 9) < 0.02, `share of a ${seen[0] / 9000}`);
    assert.deepEqual(firstOfA, [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 0]);
  });

  it('refuses a class the model does not have', () => {
    assert.throws(() => classWeights({ Hat: 2 }, labels), /"Hat" is not one of the model's classes/);
  });
});
