/**
 * The hostile-input corpus: every kind of bad (or merely odd) input a public
 * upload path meets, each with what a client must get back. Generated here,
 * at test time, with sharp and a few hand-made byte sequences; the tests send
 * every case over HTTP and gRPC (test/integration/hostile.test.ts) and to the
 * built service (test/e2e/hostile.test.ts).
 *
 * Write it out to look at or to aim other tools at it:
 *   node dist/test/support/hostile-corpus.js <dir>   (npm run corpus -- <dir>)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { ReceiptSigner } from '../../src/feedback/receipts';
import { pngDeclaring } from '../images';

/** gRPC status numbers used below. */
const G = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9 } as const;

/** What the client must get: a classification, or an error with this HTTP status, service code, gRPC status and message. */
export type Expect = { classify: true } | { status: number; code: string; grpc: number; message: RegExp };

const classify: Expect = { classify: true };
const invalid = (message: RegExp): Expect => ({ status: 400, code: 'INVALID_ARGUMENT', grpc: G.INVALID_ARGUMENT, message });
const unsupported = (message: RegExp): Expect => ({ status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', grpc: G.INVALID_ARGUMENT, message });
const tooLarge = (message: RegExp): Expect => ({ status: 413, code: 'PAYLOAD_TOO_LARGE', grpc: G.RESOURCE_EXHAUSTED, message });
const notFound = (message: RegExp): Expect => ({ status: 404, code: 'NOT_FOUND', grpc: G.NOT_FOUND, message });

/** A file upload: sent as multipart, as base64 JSON and as gRPC `encoded` bytes. */
export interface FileCase {
  name: string;
  file: string;
  bytes: Buffer;
  expect: Expect;
}

/** A pixel array: sent as JSON `pixels` (when `json`) and as gRPC `pixels.values` (when `grpc`, numbers only). */
export interface PixelCase {
  name: string;
  /** The JSON text of the array (so NaN-free oddities like 1e999 and deep nesting are exact). */
  json?: string;
  grpc?: number[];
  expect: Expect;
}

/** A raw HTTP request: bodies and headers that only HTTP can carry. */
export interface HttpCase {
  name: string;
  method: 'GET' | 'POST' | 'PUT';
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** OIP routes answer {"error": message}; ours {"error": {code, message, requestId}}. */
  oip?: boolean;
  expect: Expect | { status: number; code?: undefined };
}

/** A gRPC call of the product service with a request only gRPC can carry. */
export interface GrpcCase {
  name: string;
  method: 'Classify' | 'ClassifyBatch' | 'SendFeedback';
  request: unknown;
  expect: Expect;
}

/** Classify options (model, version, topK, routing key) sent with a valid image, both transports. */
export interface OptionCase {
  name: string;
  options: { model?: string; version?: string; topK?: number; routingKey?: string };
  expect: Expect;
}

/** Feedback, both transports. */
export interface FeedbackCase {
  name: string;
  predictionId: unknown;
  label: unknown;
  expect: Expect;
}

export interface Corpus {
  files: FileCase[];
  pixels: PixelCase[];
  http: HttpCase[];
  grpc: GrpcCase[];
  options: OptionCase[];
  feedback: FeedbackCase[];
}

export interface CorpusLimits {
  maxImageBytes: number;
  maxJsonBytes: number;
  maxBatchImages: number;
  grpcMaxMessageBytes: number;
  /** The RECEIPT_SECRET of the service under test: forged, expired and valid ids need it. */
  receiptSecret: string;
  feedbackMaxAgeHours: number;
}

const solid = (width: number, height: number, background: string) => sharp({ create: { width, height, channels: 3, background } });

/** A catalog-ish picture: a dark square on light ground, so converters have something to find. */
async function picture(): Promise<Sharp> {
  const item = await solid(40, 40, '#202840').png().toBuffer();
  return solid(96, 96, '#f4f4f2').composite([{ input: item, left: 28, top: 20 }]);
}

/** A JPEG whose frame header (SOF0) declares width x height. */
async function jpegDeclaring(width: number, height: number): Promise<Buffer> {
  const jpeg = Buffer.from(await solid(16, 16, '#808080').jpeg({ mozjpeg: false }).toBuffer());
  for (let i = 2; i + 9 < jpeg.length;) {
    if (jpeg[i] !== 0xff) throw new Error('JPEG marker expected');
    const marker = jpeg[i + 1];
    const length = jpeg.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xc2) {
      jpeg.writeUInt16BE(height, i + 5);
      jpeg.writeUInt16BE(width, i + 7);
      return jpeg;
    }
    i += 2 + length;
  }
  throw new Error('no SOF marker');
}

/** A GIF of one 1x1 frame on a logical screen declared width x height. */
function gifDeclaring(width: number, height: number): Buffer {
  const b = Buffer.alloc(13);
  b.write('GIF89a', 0, 'latin1');
  b.writeUInt16LE(width, 6);
  b.writeUInt16LE(height, 8);
  b[10] = 0x80; // global color table of 2 entries
  const palette = Buffer.from([0, 0, 0, 255, 255, 255]);
  const descriptor = Buffer.alloc(10);
  descriptor[0] = 0x2c;
  descriptor.writeUInt16LE(width, 5);
  descriptor.writeUInt16LE(height, 7);
  const data = Buffer.from([0x02, 0x02, 0x44, 0x01, 0x00, 0x3b]); // LZW min code size 2, one sub-block, trailer
  return Buffer.concat([b, palette, descriptor, data]);
}

/** Multipart body with the given parts; returns the body and its content type. */
export function multipart(
  parts: Array<{ field: string; file?: string; contentType?: string; data: Buffer | string }>,
  boundary = 'hostile-boundary-7MA4YWxk',
): { body: Buffer; type: string } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = `form-data; name="${p.field}"${p.file ? `; filename="${p.file}"` : ''}`;
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: ${disposition}\r\n${p.contentType ? `Content-Type: ${p.contentType}\r\n` : ''}\r\n`,
      ),
    );
    chunks.push(Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const zeros = (n: number) => new Array<number>(n).fill(0);

export async function hostileCorpus(limits: CorpusLimits): Promise<Corpus> {
  const png = await (await picture()).png().toBuffer();
  const jpeg = await (await picture()).jpeg().toBuffer();
  const webp = await (await picture()).webp().toBuffer();
  const half = (b: Buffer) => b.subarray(0, b.length >> 1);
  const ihdrFlipped = Buffer.from(png);
  ihdrFlipped[18] ^= 0xff; // width inside IHDR: its CRC no longer matches
  const jpegGarbage = Buffer.concat([jpeg.subarray(0, 4), Buffer.alloc(600, 0x5a)]);
  const frames = await Promise.all(['#ffffff', '#000000', '#ffffff'].map((c) => solid(40, 40, c).png().toBuffer()));

  const files: FileCase[] = [
    { name: 'empty file', file: 'empty.png', bytes: Buffer.alloc(0), expect: invalid(/empty/) },
    { name: 'truncated PNG', file: 'truncated.png', bytes: half(png), expect: invalid(/PNG file is corrupt or truncated/) },
    { name: 'truncated JPEG', file: 'truncated.jpg', bytes: half(jpeg), expect: invalid(/JPEG file is corrupt or truncated/) },
    { name: 'truncated WebP', file: 'truncated.webp', bytes: half(webp), expect: invalid(/WebP file is corrupt or truncated/) },
    { name: 'PNG with a corrupt header', file: 'corrupt.png', bytes: ihdrFlipped, expect: invalid(/PNG file is corrupt or truncated/) },
    {
      name: 'JPEG with garbage after the markers',
      file: 'corrupt.jpg',
      bytes: jpegGarbage,
      expect: invalid(/JPEG file is corrupt or truncated/),
    },
    {
      name: 'PDF',
      file: 'doc.pdf',
      bytes: Buffer.from('%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n'),
      expect: unsupported(/PDF document/),
    },
    {
      name: 'ZIP',
      file: 'archive.zip',
      bytes: Buffer.from('504b0304140000000800000000000000000000000000000000000500', 'hex'),
      expect: unsupported(/ZIP archive/),
    },
    { name: 'plain text', file: 'notes.txt', bytes: Buffer.from('a red dress, size 38\n'), expect: unsupported(/is text/) },
    {
      name: 'HTML',
      file: 'page.html',
      bytes: Buffer.from('<!DOCTYPE html><html><body><img src="x.png"></body></html>'),
      expect: unsupported(/HTML page/),
    },
    {
      name: 'SVG referencing outside resources',
      file: 'evil.svg',
      bytes: Buffer.from(
        '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="28" height="28"><image xlink:href="file:///etc/passwd" width="28" height="28"/></svg>',
      ),
      expect: unsupported(/SVG/),
    },
    {
      name: 'PNG declaring 100000 x 100000 pixels',
      file: 'bomb-header.png',
      bytes: pngDeclaring(100_000, 100_000),
      expect: tooLarge(/100000x100000 = 10000000000 pixels; the limit is/),
    },
    {
      name: 'PNG bomb: 10000 x 10000 white, compressed',
      file: 'bomb.png',
      bytes: await solid(10_000, 10_000, '#ffffff').png({ compressionLevel: 9 }).toBuffer(),
      expect: tooLarge(/10000x10000 = 100000000 pixels/),
    },
    {
      name: 'JPEG declaring 60000 x 60000 pixels',
      file: 'bomb.jpg',
      bytes: await jpegDeclaring(60_000, 60_000),
      expect: tooLarge(/60000x60000/),
    },
    { name: 'GIF declaring 65535 x 65535 pixels', file: 'bomb.gif', bytes: gifDeclaring(65_535, 65_535), expect: tooLarge(/65535x65535/) },
    {
      name: 'file over the byte limit',
      file: 'huge.png',
      bytes: Buffer.concat([png, Buffer.alloc(limits.maxImageBytes + 1 - png.length)]),
      // One wording whichever layer meets the limit first (multer, the base64 or gRPC bytes through the decoder).
      expect: tooLarge(new RegExp(`^an image may be at most ${limits.maxImageBytes} bytes`)),
    },
    // Odd but valid: classified.
    { name: '1x1 PNG', file: '1x1.png', bytes: await solid(1, 1, '#000000').png().toBuffer(), expect: classify },
    { name: '1x100000 PNG', file: '1x100000.png', bytes: await solid(1, 100_000, '#000000').png().toBuffer(), expect: classify },
    { name: 'CMYK JPEG', file: 'cmyk.jpg', bytes: await (await picture()).toColourspace('cmyk').jpeg().toBuffer(), expect: classify },
    { name: '16-bit PNG', file: 'rgb16.png', bytes: await (await picture()).toColourspace('rgb16').png().toBuffer(), expect: classify },
    {
      name: 'animated GIF (first frame used)',
      file: 'animated.gif',
      bytes: await sharp(frames, { join: { animated: true } })
        .gif()
        .toBuffer(),
      expect: classify,
    },
    {
      name: '6000 x 6000 PNG (huge, within limits)',
      file: '6000x6000.png',
      bytes: await solid(6000, 6000, '#f0f0f0').png().toBuffer(),
      expect: classify,
    },
  ];

  const pixelError = (m: RegExp) => invalid(m);
  const withAt = (i: number, v: string) =>
    `[${zeros(784)
      .map((z, j) => (j === i ? v : String(z)))
      .join(',')}]`;
  const deep = (n: number) => `${'['.repeat(n)}0${']'.repeat(n)}`;
  const pixels: PixelCase[] = [
    { name: 'no pixels', json: '[]', grpc: [], expect: pixelError(/784 values .* got 0/) },
    { name: '783 pixels', json: JSON.stringify(zeros(783)), grpc: zeros(783), expect: pixelError(/got 783/) },
    { name: '785 pixels', json: JSON.stringify(zeros(785)), grpc: zeros(785), expect: pixelError(/got 785/) },
    {
      name: 'NaN',
      grpc: zeros(784).map((z, j) => (j === 5 ? Number.NaN : z)),
      expect: pixelError(/pixels\[5\] must be a number in 0\.\.255/),
    },
    {
      name: 'Infinity (1e999 in JSON)',
      json: withAt(6, '1e999'),
      grpc: zeros(784).map((z, j) => (j === 6 ? Infinity : z)),
      expect: pixelError(/pixels\[6\]/),
    },
    {
      name: 'negative value',
      json: withAt(7, '-1'),
      grpc: zeros(784).map((z, j) => (j === 7 ? -1 : z)),
      expect: pixelError(/pixels\[7\] must be a number in 0\.\.255, got -1/),
    },
    {
      name: 'value over 255',
      json: withAt(8, '256'),
      grpc: zeros(784).map((z, j) => (j === 8 ? 256 : z)),
      expect: pixelError(/pixels\[8\] .* got 256/),
    },
    { name: 'string value', json: withAt(9, '"12"'), expect: pixelError(/pixels\[9\] .* got "12"/) },
    { name: 'null value', json: withAt(10, 'null'), expect: pixelError(/pixels\[10\]/) },
    { name: 'nested arrays', json: JSON.stringify(zeros(784).map((z) => [z])), expect: pixelError(/pixels\[0\]/) },
    { name: 'pixels as a string', json: '"0,0,0"', expect: pixelError(/pixels must be an array/) },
    { name: 'pixels nested 100000 deep', json: deep(100_000), expect: pixelError(/784 values .* got 1/) },
    {
      name: 'one entry nested 10000 deep',
      json: withAt(0, deep(10_000)),
      expect: pixelError(/pixels\[0\] must be a number in 0\.\.255, got an array of 1$/),
    },
    {
      name: 'one entry a 1 MB string',
      json: withAt(0, JSON.stringify('x'.repeat(1_000_000))),
      expect: pixelError(/got a string of 1000000 characters$/),
    },
    { name: 'all 255 (valid)', json: JSON.stringify(new Array(784).fill(255)), grpc: new Array(784).fill(255), expect: classify },
    {
      name: 'fractional values (valid)',
      json: JSON.stringify(zeros(784).map((_, j) => (j % 256) + 0.5 - (j % 256 === 255 ? 1 : 0))),
      expect: classify,
    },
  ];

  const pixelsBody = json({ pixels: zeros(784) });
  const ct = (type: string) => ({ 'content-type': type });
  const batchOf = (n: number) => json({ images: new Array(n).fill({ pixels: zeros(784) }) });
  const manyFiles = multipart(
    new Array(limits.maxBatchImages + 1)
      .fill(0)
      .map((_, i) => ({ field: 'images', file: `${i}.png`, contentType: 'image/png', data: png })),
  );
  const twoFiles = multipart([
    { field: 'image', file: 'a.png', data: png },
    { field: 'image', file: 'b.png', data: png },
  ]);
  const sparse = multipart([
    { field: 'model[4294967294]', data: 'x' },
    { field: 'model[x]', data: 'y' },
    { field: 'image', file: 'a.png', data: png },
  ]);
  const wrongField = multipart([{ field: 'photo', file: 'a.png', data: png }]);
  const good = multipart([{ field: 'image', file: 'a.png', contentType: 'image/png', data: png }]);
  const http: HttpCase[] = [
    {
      name: 'no body, no content type',
      method: 'POST',
      path: '/v1/classify',
      headers: {},
      expect: unsupported(/content type \(none\) is not accepted/),
    },
    {
      name: 'empty JSON body',
      method: 'POST',
      path: '/v1/classify',
      headers: ct('application/json'),
      body: Buffer.alloc(0),
      expect: invalid(/^the JSON body is empty; send a JSON object$/),
    },
    {
      name: 'text/plain body',
      method: 'POST',
      path: '/v1/classify',
      headers: ct('text/plain'),
      body: Buffer.from('hello'),
      expect: unsupported(/text\/plain is not accepted/),
    },
    {
      name: 'XML body',
      method: 'POST',
      path: '/v1/classify',
      headers: ct('application/xml'),
      body: Buffer.from('<pixels/>'),
      expect: unsupported(/application\/xml is not accepted/),
    },
    {
      name: 'raw image/png body',
      method: 'POST',
      path: '/v1/classify',
      headers: ct('image/png'),
      body: png,
      expect: unsupported(/image\/png is not accepted; send multipart/),
    },
    {
      name: 'invalid JSON',
      method: 'POST',
      path: '/v1/classify',
      headers: ct('application/json'),
      body: Buffer.from('{"pixels": [1, 2,'),
      expect: invalid(/not valid JSON/),
    },
    {
      name: 'JSON with a NaN literal',
      method: 'POST',
      path: '/v1/classify',
      headers: ct('application/json'),
      body: Buffer.from(`{"pixels": [NaN${',0'.repeat(783)}]}`),
      expect: invalid(/not valid JSON/),
    },
    {
      name: 'JSON array body',
      method: 'POST',
      path: '/v1/classify',
      headers: ct('application/json'),
      body: Buffer.from('[1,2,3]'),
      expect: invalid(/JSON body must be an object/),
    },
    {
      name: 'JSON over the body limit',
      method: 'POST',
      path: '/v1/classify',
      headers: ct('application/json'),
      body: Buffer.from(`{"pad":"${'x'.repeat(limits.maxJsonBytes)}"}`),
      expect: tooLarge(/larger than the limit of \d+ bytes/),
    },
    {
      name: 'JSON body nested 1000000 deep',
      method: 'POST',
      path: '/v1/classify',
      headers: ct('application/json'),
      body: Buffer.from(`{"image":${deep(1_000_000)}}`),
      expect: invalid(/image must be a base64 string/),
    },
    {
      name: 'invalid base64',
      method: 'POST',
      path: '/v1/classify',
      headers: ct('application/json'),
      body: json({ image: 'iVBOR*w0KGgo!!' }),
      expect: invalid(/image is not valid base64/),
    },
    {
      name: 'image and pixels both',
      method: 'POST',
      path: '/v1/classify',
      headers: ct('application/json'),
      body: json({ image: png.toString('base64'), pixels: zeros(784) }),
      expect: invalid(/exactly one of/),
    },
    {
      name: 'multipart without a boundary',
      method: 'POST',
      path: '/v1/classify',
      headers: ct('multipart/form-data'),
      body: good.body,
      expect: invalid(/malformed multipart body/),
    },
    {
      name: 'multipart cut short',
      method: 'POST',
      path: '/v1/classify',
      headers: ct(good.type),
      body: good.body.subarray(0, good.body.length - 40),
      expect: invalid(/malformed multipart body/),
    },
    {
      name: 'multipart with the file in another field',
      method: 'POST',
      path: '/v1/classify',
      headers: ct(wrongField.type),
      body: wrongField.body,
      expect: invalid(/unexpected file field "photo"/),
    },
    {
      name: 'multipart field name with a huge array index (sparse-array CPU attack)',
      method: 'POST',
      path: '/v1/classify',
      headers: ct(sparse.type),
      body: sparse.body,
      expect: invalid(/form field names are plain words .* "model\[4294967294\]" is not/),
    },
    {
      name: 'multipart with two files for one image',
      method: 'POST',
      path: '/v1/classify',
      headers: ct(twoFiles.type),
      body: twoFiles.body,
      expect: invalid(/a request holds at most 1 image\b/),
    },
    {
      name: 'JSON batch over the image limit',
      method: 'POST',
      path: '/v1/classify/batch',
      headers: ct('application/json'),
      body: batchOf(limits.maxBatchImages + 1),
      expect: invalid(new RegExp(`at most ${limits.maxBatchImages} images`)),
    },
    {
      name: 'multipart batch over the image limit',
      method: 'POST',
      path: '/v1/classify/batch',
      headers: ct(manyFiles.type),
      body: manyFiles.body,
      expect: invalid(new RegExp(`a request holds at most ${limits.maxBatchImages} images`)),
    },
    {
      name: 'empty batch',
      method: 'POST',
      path: '/v1/classify/batch',
      headers: ct('application/json'),
      body: json({ images: [] }),
      expect: invalid(/at least one image/),
    },
    {
      name: 'headers over 16 KiB',
      method: 'POST',
      path: '/v1/classify',
      headers: { ...ct('application/json'), 'x-padding': 'p'.repeat(20_000) },
      body: pixelsBody,
      expect: { status: 431 },
    },
    {
      name: 'model name escaping the model directory (query)',
      method: 'POST',
      path: '/v1/classify?model=..%2F..%2Fetc%2Fpasswd',
      headers: ct('application/json'),
      body: pixelsBody,
      expect: invalid(/model must be a model name/),
    },
    {
      name: 'model name escaping the model directory (OIP path)',
      method: 'POST',
      path: '/v2/models/..%2F..%2Fetc/infer',
      headers: ct('application/json'),
      body: json({ inputs: [] }),
      oip: true,
      expect: invalid(/model name/),
    },
    {
      name: 'OIP version escaping the model directory',
      method: 'GET',
      path: '/v2/models/baseline/versions/..%2F2',
      headers: {},
      oip: true,
      expect: invalid(/version/),
    },
    {
      name: 'OIP tensor data nested 100000 deep',
      method: 'POST',
      path: '/v2/models/baseline/infer',
      headers: ct('application/json'),
      body: Buffer.from(`{"inputs":[{"name":"pixels","datatype":"UINT8","shape":[1,784],"data":${deep(100_000)}}]}`),
      oip: true,
      expect: invalid(/nested deeper than/),
    },
    { name: 'unknown route', method: 'GET', path: '/v1/../../etc/passwd', headers: {}, expect: notFound(/no route/) },
    {
      name: 'admin route without a token',
      method: 'POST',
      path: '/v1/admin/models/reload',
      headers: {},
      expect: { status: 401, code: 'UNAUTHENTICATED', grpc: 16, message: /bearer token/ },
    },
    {
      name: 'admin route with a wrong token',
      method: 'POST',
      path: '/v1/admin/models/reload',
      headers: { authorization: 'Bearer not-the-admin-token-at-all' },
      expect: { status: 401, code: 'UNAUTHENTICATED', grpc: 16, message: /bearer token/ },
    },
    {
      name: 'feedback as text/plain',
      method: 'POST',
      path: '/v1/feedback',
      headers: ct('text/plain'),
      body: Buffer.from('x'),
      expect: unsupported(/not accepted/),
    },
  ];

  const grpc: GrpcCase[] = [
    { name: 'Classify without an image', method: 'Classify', request: {}, expect: invalid(/needs an image/) },
    {
      name: 'Classify with empty encoded bytes',
      method: 'Classify',
      request: { image: { encoded: Buffer.alloc(0) } },
      expect: invalid(/empty/),
    },
    // Refused by grpc-js before any handler runs: no x-error-code (code '').
    {
      name: 'message over the gRPC size limit',
      method: 'Classify',
      request: { image: { encoded: Buffer.alloc(limits.grpcMaxMessageBytes + 1024, 1) } },
      expect: { status: 0, code: '', grpc: G.RESOURCE_EXHAUSTED, message: /larger than max/i },
    },
    {
      name: 'ClassifyBatch over the image limit',
      method: 'ClassifyBatch',
      request: { images: new Array(limits.maxBatchImages + 1).fill({ pixels: { values: zeros(784) } }) },
      expect: invalid(new RegExp(`at most ${limits.maxBatchImages} images`)),
    },
    { name: 'ClassifyBatch with no images', method: 'ClassifyBatch', request: { images: [] }, expect: invalid(/at least one image/) },
  ];

  const options: OptionCase[] = [
    { name: 'unknown model', options: { model: 'no-such-model' }, expect: notFound(/unknown model "no-such-model"/) },
    { name: 'unknown version', options: { model: 'baseline', version: '999' }, expect: notFound(/no loaded version "999"/) },
    { name: 'model name with a path', options: { model: '../../etc/passwd' }, expect: invalid(/model must be a model name/) },
    {
      name: 'version with a path',
      options: { model: 'baseline', version: '1/../../2' },
      expect: invalid(/version must be a positive integer/),
    },
    { name: 'version without a model', options: { version: '1' }, expect: invalid(/version needs model/) },
    {
      name: 'routing key over 256 characters',
      options: { routingKey: 'k'.repeat(300) },
      expect: invalid(/routing key must be 1\.\.256 characters/),
    },
  ];

  const secret = Buffer.from(limits.receiptSecret);
  const maxAgeMs = limits.feedbackMaxAgeHours * 3_600_000;
  const receipt = { model: 'baseline', version: '1', arm: 'baseline', labelIndex: 3, confidence: 0.9 };
  const valid = new ReceiptSigner(secret, maxAgeMs).issue(receipt);
  const expired = new ReceiptSigner(secret, maxAgeMs, () => Date.now() - maxAgeMs - 60_000).issue(receipt);
  const foreign = new ReceiptSigner(Buffer.from('another-replica-set-secret'), maxAgeMs).issue(receipt);
  const [payload, signature] = valid.split('.');
  const altered = JSON.parse(Buffer.from(payload, 'base64url').toString());
  altered.c = 7; // claim another prediction
  const tampered = `${Buffer.from(JSON.stringify(altered)).toString('base64url')}.${signature}`;
  const denied = (m: RegExp): Expect => ({ status: 403, code: 'PERMISSION_DENIED', grpc: G.PERMISSION_DENIED, message: m });
  const feedback: FeedbackCase[] = [
    { name: 'malformed prediction id', predictionId: 'not-an-id', label: 'Dress', expect: invalid(/predictionId is malformed/) },
    { name: 'prediction id over 2048 characters', predictionId: `${'a'.repeat(3000)}.b`, label: 'Dress', expect: invalid(/too long/) },
    { name: 'tampered prediction id', predictionId: tampered, label: 'Dress', expect: denied(/signature does not match/) },
    { name: 'prediction id from another secret', predictionId: foreign, label: 'Dress', expect: denied(/signature does not match/) },
    {
      name: 'expired prediction id',
      predictionId: expired,
      label: 'Dress',
      expect: { status: 400, code: 'FAILED_PRECONDITION', grpc: G.FAILED_PRECONDITION, message: /expired/ },
    },
    { name: 'unknown label', predictionId: valid, label: 'Spaceship', expect: invalid(/Spaceship/) },
    { name: 'label index out of range', predictionId: valid, label: 10, expect: invalid(/10/) },
    { name: 'no label', predictionId: valid, label: undefined, expect: invalid(/label/) },
  ];
  return { files, pixels, http, grpc, options, feedback };
}

/** Write the corpus's files and an index of every case with its expected answer. */
async function writeCorpus(dir: string): Promise<void> {
  const corpus = await hostileCorpus({
    maxImageBytes: 10 * 1024 * 1024,
    maxJsonBytes: 32 * 1024 * 1024,
    maxBatchImages: 256,
    grpcMaxMessageBytes: 32 * 1024 * 1024,
    receiptSecret: process.env.RECEIPT_SECRET ?? 'corpus-receipt-secret-0123456789',
    feedbackMaxAgeHours: 168,
  });
  mkdirSync(path.join(dir, 'files'), { recursive: true });
  const expect = (e: HttpCase['expect']) => ('classify' in e ? 'classified' : `${e.status} ${e.code ?? ''}`.trim());
  for (const f of corpus.files) writeFileSync(path.join(dir, 'files', f.file), f.bytes);
  const index = {
    files: corpus.files.map((f) => ({ name: f.name, file: `files/${f.file}`, bytes: f.bytes.length, expect: expect(f.expect) })),
    pixels: corpus.pixels.map((p) => ({ name: p.name, expect: expect(p.expect) })),
    http: corpus.http.map((h) => ({ name: h.name, request: `${h.method} ${h.path}`, expect: expect(h.expect) })),
    grpc: corpus.grpc.map((g) => ({ name: g.name, method: g.method, expect: expect(g.expect) })),
    options: corpus.options.map((o) => ({ name: o.name, options: o.options, expect: expect(o.expect) })),
    feedback: corpus.feedback.map((f) => ({ name: f.name, expect: expect(f.expect) })),
  };
  writeFileSync(path.join(dir, 'index.json'), `${JSON.stringify(index, null, 2)}\n`);
  const total = Object.values(index).reduce((n, list) => n + list.length, 0);
  process.stdout.write(`${total} cases written to ${dir} (${corpus.files.length} files in files/, index.json)\n`);
}

if (require.main === module) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: node dist/test/support/hostile-corpus.js <output dir>\n');
    process.exit(2);
  }
  writeCorpus(path.resolve(dir)).catch((err) => {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  });
}
