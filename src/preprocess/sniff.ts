/**
 * What an uploaded file is, from its first bytes, before any decoder sees it.
 *
 * Only files whose signature is one of the image formats we accept reach
 * libvips: an SVG (which could make a renderer fetch outside resources), a
 * PDF or an HTML page is refused here by name, and a PNG that libvips then
 * cannot read is reported as a broken PNG, not as an unknown format.
 */

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'gif' | 'tiff' | 'heif';

export type Sniffed = { image: true; format: ImageFormat } | { image: false; what: string };

const HEIF_BRANDS = new Set(['avif', 'avis', 'heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'mif1', 'msf1']);

function startsWith(bytes: Uint8Array, sig: ArrayLike<number>, at = 0): boolean {
  if (bytes.length < at + sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (bytes[at + i] !== sig[i]) return false;
  return true;
}

/** Bytes [from, to) as latin1 text, cut to what the file has (a 3-byte file has no bytes 4..8). */
function ascii(bytes: Uint8Array, from: number, to: number): string {
  const start = Math.min(from, bytes.length);
  const end = Math.min(to, bytes.length);
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
}

/** Formats we refuse, named so the client learns what it sent. */
const OTHER_SIGNATURES: Array<[number[], string]> = [
  [[0x25, 0x50, 0x44, 0x46, 0x2d], 'a PDF document'], // %PDF-
  [[0x50, 0x4b, 0x03, 0x04], 'a ZIP archive (or an office document)'],
  [[0x50, 0x4b, 0x05, 0x06], 'an empty ZIP archive'],
  [[0x1f, 0x8b], 'a gzip file'],
  [[0x42, 0x4d], 'a BMP image (not accepted)'],
  [[0x00, 0x00, 0x01, 0x00], 'an ICO icon (not accepted)'],
  [[0x38, 0x42, 0x50, 0x53], 'a Photoshop file (not accepted)'], // 8BPS
  [[0x7f, 0x45, 0x4c, 0x46], 'an executable'],
];

export function sniffImage(bytes: Uint8Array): Sniffed {
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return { image: true, format: 'png' };
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return { image: true, format: 'jpeg' };
  const head6 = ascii(bytes, 0, 6);
  if (head6 === 'GIF87a' || head6 === 'GIF89a') return { image: true, format: 'gif' };
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 12) === 'WEBP') return { image: true, format: 'webp' };
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])) return { image: true, format: 'tiff' };
  if (ascii(bytes, 4, 8) === 'ftyp' && HEIF_BRANDS.has(ascii(bytes, 8, 12))) return { image: true, format: 'heif' };
  for (const [sig, what] of OTHER_SIGNATURES) if (startsWith(bytes, sig)) return { image: false, what };
  return { image: false, what: describeText(bytes) };
}

/** Markup and plain text, by their opening (after a byte-order mark and blanks). */
function describeText(bytes: Uint8Array): string {
  const head = ascii(bytes, 0, 512)
    .replace(/^\xef\xbb\xbf/, '')
    .trimStart()
    .toLowerCase();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg')))
    return 'an SVG image (refused: it can reference outside resources)';
  if (head.startsWith('<!doctype html') || head.startsWith('<html')) return 'an HTML page';
  if (head.startsWith('<?xml') || head.startsWith('<')) return 'an XML or markup document';
  if (head.startsWith('{') || head.startsWith('[')) return 'JSON text (send JSON as application/json, not as a file)';
  // Printable text (allowing UTF-8 bytes) in the first 512 bytes.
  const sample = bytes.subarray(0, 512);
  let printable = 0;
  for (const b of sample) if (b === 9 || b === 10 || b === 13 || (b >= 32 && b !== 127)) printable++;
  if (sample.length > 0 && printable === sample.length) return 'text';
  return 'not a known image format';
}
