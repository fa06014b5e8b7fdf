import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { cornerColor, fitLongestEdge, padCenter, trimBox } from '../../src/preprocess/fashion-steps';
import { Preprocessor, validatePixels } from '../../src/preprocess/preprocessor';
import { sniffImage } from '../../src/preprocess/sniff';
import { readTestSet } from '../../src/tools/fashion-mnist';
import { brightBox, catalogPhoto, catalogRaw, encode, pngDeclaring } from '../images';
import { fixtureBytes, fixtureImages } from '../helpers';

const pre = new Preprocessor({ maxImageBytes: 5 * 1024 * 1024, maxImagePixels: 40_000_000 });
const toPixels = (bytes: Buffer) => pre.toPixels({ kind: 'encoded', bytes }, 28, 28);
const code = (c: string) => (e: any) => e.code === c;

describe('Fashion-MNIST conversion steps', () => {
  it('finds the background from the corners and trims to the item', () => {
    const img = {
      width: 6,
      height: 5,
      data: Uint8Array.from([
        250,
        250,
        250,
        250,
        250,
        250,
        250,
        250,
        20,
        20,
        250,
        250,
        250,
        250,
        20,
        240,
        250,
        250, // 240 is within 5% of 250: background
        250,
        250,
        250,
        250,
        250,
        250,
        250,
        250,
        250,
        250,
        250,
        250,
      ]),
    };
    assert.equal(cornerColor(img), 250);
    assert.deepEqual(trimBox(img, 250), { left: 2, top: 1, width: 2, height: 2 });
  });

  it('keeps the aspect ratio with the longest edge at the target', () => {
    assert.deepEqual(fitLongestEdge(300, 600, 28), { width: 14, height: 28 });
    assert.deepEqual(fitLongestEdge(1000, 3, 28), { width: 28, height: 1 });
  });

  it('pads centered with the background', () => {
    const out = padCenter({ width: 2, height: 1, data: Uint8Array.from([9, 9]) }, 4, 3, 0);
    assert.deepEqual([...out.data], [0, 0, 0, 0, 0, 9, 9, 0, 0, 0, 0, 0]);
  });
});

describe('preprocessor', () => {
  it('passes a 28x28 Fashion-MNIST PNG through unchanged', async () => {
    const { images } = readTestSet();
    for (const f of fixtureImages().slice(0, 20)) {
      const r = await toPixels(fixtureBytes(f.file));
      assert.equal(r.path, 'passthrough');
      const expected = images.pixels.subarray(f.testIndex * 784, (f.testIndex + 1) * 784);
      assert.deepEqual(Array.from(r.pixels), Array.from(expected), f.file);
    }
  });

  it('converts a large off-center color catalog photo: centered, negated, 28x28', async () => {
    const r = await toPixels(await catalogPhoto('jpeg', 800, 1000));
    assert.equal(r.path, 'converted');
    assert.equal(r.pixels.length, 784);
    const px = r.pixels;
    for (const i of [0, 27, 27 * 28, 783]) assert.ok(px[i] < 20, 'background is black after negation');
    const box = brightBox(px);
    assert.equal(box.height, 28, 'the longest edge (height) fills the frame');
    // item is 240 x 550 pixels: 28 tall -> 12 wide
    assert.ok(Math.abs(box.width - 12) <= 1, `width ${box.width} keeps the aspect ratio`);
    const centerX = box.left + box.width / 2;
    assert.ok(Math.abs(centerX - 14) <= 1, `item centered (center x ${centerX})`);
  });

  for (const format of ['png', 'webp', 'tiff', 'avif', 'gif'] as const) {
    it(`decodes ${format}`, async () => {
      const r = await toPixels(await catalogPhoto(format, 300, 240));
      assert.equal(r.path, 'converted');
      const box = brightBox(r.pixels);
      assert.ok(Math.max(box.width, box.height) >= 27, JSON.stringify(box)); // edge rows may be blended by the shrink
    });
  }

  it('applies EXIF orientation before converting', async () => {
    // Stored 60 wide x 100 tall; orientation 6 displays it rotated 90 degrees: 100 wide x 60 tall.
    const raw = catalogRaw(200, 200, { left: 50, top: 40, width: 60, height: 100 });
    const upright = await toPixels(await encode(raw, 200, 200).jpeg().toBuffer());
    const rotated = await toPixels(await encode(raw, 200, 200).jpeg().withMetadata({ orientation: 6 }).toBuffer());
    assert.equal(brightBox(upright.pixels).height, 28);
    assert.equal(brightBox(rotated.pixels).width, 28);
    assert.ok(brightBox(rotated.pixels).height < 20);
  });

  it('flattens transparency onto white (a cut-out product on a transparent background)', async () => {
    const w = 120;
    const rgba = Buffer.alloc(w * w * 4); // fully transparent black
    for (let y = 30; y < 90; y++) for (let x = 40; x < 80; x++) rgba.set([20, 20, 20, 255], (y * w + x) * 4);
    const r = await toPixels(await encode(rgba, w, w, 4).png().toBuffer());
    assert.ok(r.pixels[0] < 20, 'transparent background became white, then black after negation');
    assert.equal(brightBox(r.pixels).height, 28);
  });

  it('uses the first frame of an animated GIF', async () => {
    const tall = await encode(catalogRaw(100, 100, { left: 40, top: 10, width: 20, height: 80 }), 100, 100)
      .png()
      .toBuffer();
    const wide = await encode(catalogRaw(100, 100, { left: 10, top: 40, width: 80, height: 20 }), 100, 100)
      .png()
      .toBuffer();
    const gif = await sharp([tall, wide], { join: { animated: true } })
      .gif()
      .toBuffer();
    assert.equal((await sharp(gif).metadata()).pages, 2);
    const box = brightBox((await toPixels(gif)).pixels);
    assert.equal(box.height, 28);
    assert.ok(box.width < 12);
  });

  it('refuses SVG, non-images, empty and truncated files, oversized files and pixel bombs with clear codes', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect width="28" height="28"/></svg>');
    await assert.rejects(toPixels(svg), (e: any) => e.code === 'UNSUPPORTED_MEDIA_TYPE' && /SVG/.test(e.message));
    await assert.rejects(toPixels(Buffer.from('%PDF-1.7 not an image')), code('UNSUPPORTED_MEDIA_TYPE'));
    await assert.rejects(toPixels(Buffer.alloc(0)), code('INVALID_ARGUMENT'));
    const png = await catalogPhoto('png', 300, 300);
    await assert.rejects(toPixels(png.subarray(0, Math.floor(png.length / 2))), code('INVALID_ARGUMENT'));
    await assert.rejects(toPixels(pngDeclaring(50_000, 50_000)), (e: any) => e.code === 'PAYLOAD_TOO_LARGE' && /pixels/.test(e.message));
    const small = new Preprocessor({ maxImageBytes: 1000, maxImagePixels: 1e6 });
    await assert.rejects(
      small.toPixels({ kind: 'encoded', bytes: png }, 28, 28),
      (e: any) => e.code === 'PAYLOAD_TOO_LARGE' && /bytes/.test(e.message),
    );
  });

  it('validates pixel arrays', () => {
    assert.equal(validatePixels(new Array(784).fill(0), 784).length, 784);
    assert.equal(validatePixels(new Array(784).fill(254.5), 784).length, 784);
    assert.throws(() => validatePixels(new Array(783).fill(0), 784), /784 values/);
    assert.throws(() => validatePixels([...new Array(783).fill(0), -1], 784), /pixels\[783\]/);
    assert.throws(() => validatePixels([...new Array(783).fill(0), 256], 784), /0..255/);
    assert.throws(() => validatePixels([...new Array(783).fill(0), '7'], 784), /pixels\[783\]/);
    assert.throws(() => validatePixels([...new Array(783).fill(0), NaN], 784), /pixels\[783\]/);
    assert.throws(() => validatePixels('0,0,0', 784), /array/);
  });
});

describe('signature sniffing', () => {
  it('reads only the bytes a file has, whatever its buffer', () => {
    // A standalone ArrayBuffer as short as the file: reading past its end used to throw a RangeError.
    for (let n = 1; n <= 12; n++) {
      const bytes = new Uint8Array(new ArrayBuffer(n)).fill(0x20);
      assert.deepEqual(sniffImage(bytes), { image: false, what: 'text' }, `${n} bytes`);
    }
    assert.deepEqual(sniffImage(new Uint8Array([0x01, 0x02, 0x03])), { image: false, what: 'not a known image format' });
    assert.deepEqual(sniffImage(new Uint8Array([0x52, 0x49, 0x46, 0x46, 0, 0, 0, 0, 0x57, 0x45, 0x42, 0x50])), {
      image: true,
      format: 'webp',
    });
    assert.deepEqual(sniffImage(new Uint8Array([0x47, 0x49, 0x46, 0x38, 0x39, 0x61])), { image: true, format: 'gif' });
  });
});
