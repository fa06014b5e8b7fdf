/**
 * The fast path for pixel JSON bodies: `{"pixels": [784 integers], ...}` on
 * /v1/classify and `{"images": [{"pixels": [...]}, ...], ...}` on the batch
 * route. Their pixel arrays are read straight from the body's bytes into
 * Uint8Arrays, without a string of the body or a JS array of numbers.
 *
 * The result is JSON.parse's, with each pixel array a Uint8Array holding
 * the same numbers, or undefined: the parser answers only when it is sure of
 * that, and leaves everything else to JSON.parse (whose result and errors
 * the routes then see as before). It answers for an object at the top (in
 * any order of keys, with any JSON whitespace) whose `pixels` array, and
 * whose `images` items' `pixels` arrays, hold only integers 0..255 written
 * as plain digits; the other values are cut out and given to JSON.parse
 * one by one. It gives up (undefined) on anything else: a pixel written
 * `1.0`, `1e2`, `-0`, `256` or `"7"`, nested arrays, a key with an escape,
 * a repeated key or `__proto__`, trailing bytes, invalid JSON anywhere.
 */

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const ZERO = 0x30;
const NINE = 0x39;

/** Thrown inside the parser when it gives up; never escapes parsePixelJson. */
class GiveUp {}
const GIVE_UP = new GiveUp();

/** Where the `pixels` arrays are: at the top, and in the objects of the top's `images` array. */
type Level = 'top' | 'item';

class Parser {
  pos = 0;

  constructor(
    private readonly b: Buffer,
    private readonly text: (start: number, end: number) => string,
  ) {}

  ws(): void {
    const b = this.b;
    let p = this.pos;
    while (p < b.length && isSpace(b[p])) p++;
    this.pos = p;
  }

  expect(byte: number): void {
    if (this.b[this.pos] !== byte) throw GIVE_UP;
    this.pos++;
  }

  object(level: Level): Record<string, unknown> {
    this.expect(OPEN_BRACE);
    const out: Record<string, unknown> = {};
    this.ws();
    if (this.b[this.pos] === CLOSE_BRACE) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      const key = this.key();
      // JSON.parse keeps the last of repeated keys but their first place; __proto__ is an own property there, a prototype here.
      if (key === '__proto__' || Object.prototype.hasOwnProperty.call(out, key)) throw GIVE_UP;
      this.ws();
      this.expect(COLON);
      this.ws();
      if (key === 'pixels' && this.b[this.pos] === OPEN_BRACKET) out[key] = this.pixels();
      else if (key === 'images' && level === 'top' && this.b[this.pos] === OPEN_BRACKET) out[key] = this.images();
      else out[key] = this.value();
      this.ws();
      const c = this.b[this.pos++];
      if (c === CLOSE_BRACE) return out;
      if (c !== COMMA) throw GIVE_UP;
    }
  }

  /** A key without escapes or control characters (others: JSON.parse). */
  key(): string {
    this.expect(QUOTE);
    const b = this.b;
    const start = this.pos;
    let p = start;
    for (; p < b.length && b[p] !== QUOTE; p++) {
      if (b[p] === BACKSLASH || b[p] < SPACE) throw GIVE_UP;
    }
    if (p >= b.length) throw GIVE_UP;
    this.pos = p + 1;
    return this.text(start, p);
  }

  /** Integers 0..255 written as plain digits, comma-separated: a Uint8Array. */
  pixels(): Uint8Array {
    this.expect(OPEN_BRACKET);
    const b = this.b;
    let out = new Uint8Array(1024);
    let n = 0;
    this.ws();
    if (b[this.pos] === CLOSE_BRACKET) {
      this.pos++;
      return out.subarray(0, 0);
    }
    let p = this.pos;
    for (;;) {
      let c = b[p];
      if (!(c >= ZERO && c <= NINE)) throw GIVE_UP;
      let v = c - ZERO;
      p++;
      c = b[p];
      if (c >= ZERO && c <= NINE) {
        if (v === 0) throw GIVE_UP; // a leading zero: not JSON
        v = v * 10 + (c - ZERO);
        p++;
        c = b[p];
        if (c >= ZERO && c <= NINE) {
          v = v * 10 + (c - ZERO);
          p++;
          c = b[p];
          if (v > 255 || (c >= ZERO && c <= NINE)) throw GIVE_UP;
        }
      }
      if (n === out.length) {
        const grown = new Uint8Array(out.length * 2);
        grown.set(out);
        out = grown;
      }
      out[n++] = v;
      // isSpace written out: in this loop a call measured 5% slower (c may be undefined past the end).
      while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++p];
      p++;
      if (c === CLOSE_BRACKET) break;
      if (c !== COMMA) throw GIVE_UP; // also '.', 'e', 'E': a number this path does not read
      c = b[p];
      while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++p];
    }
    this.pos = p;
    return out.subarray(0, n);
  }

  /** The batch's items: objects parsed here (their `pixels` fast), anything else by JSON.parse. */
  images(): unknown[] {
    this.expect(OPEN_BRACKET);
    const out: unknown[] = [];
    this.ws();
    if (this.b[this.pos] === CLOSE_BRACKET) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.b[this.pos] === OPEN_BRACE ? this.object('item') : this.value());
      this.ws();
      const c = this.b[this.pos++];
      if (c === CLOSE_BRACKET) return out;
      if (c !== COMMA) throw GIVE_UP;
    }
  }

  /** Any other value: its extent found here (strings and brackets respected), its meaning JSON.parse's. */
  value(): unknown {
    const b = this.b;
    const start = this.pos;
    let p = start;
    const c = b[p];
    if (c === QUOTE) {
      p = this.stringEnd(p);
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      let depth = 0;
      for (; p < b.length; p++) {
        const d = b[p];
        if (d === QUOTE) p = this.stringEnd(p) - 1;
        else if (d === OPEN_BRACE || d === OPEN_BRACKET) depth++;
        else if (d === CLOSE_BRACE || d === CLOSE_BRACKET) {
          if (--depth === 0) {
            p++;
            break;
          }
        }
      }
      if (depth !== 0) throw GIVE_UP;
    } else {
      while (p < b.length && b[p] !== COMMA && b[p] !== CLOSE_BRACE && b[p] !== CLOSE_BRACKET && !isSpace(b[p])) p++;
    }
    if (p === start) throw GIVE_UP;
    this.pos = p;
    try {
      return JSON.parse(this.text(start, p));
    } catch {
      throw GIVE_UP;
    }
  }

  /** The index after the closing quote of the string starting at `p` (found with indexOf: a base64 image is long). */
  stringEnd(p: number): number {
    const b = this.b;
    for (let q = b.indexOf(QUOTE, p + 1); q >= 0; q = b.indexOf(QUOTE, q + 1)) {
      // Escaped when an odd number of backslashes stands right before it.
      let k = q - 1;
      while (k > p && b[k] === BACKSLASH) k--;
      if ((q - 1 - k) % 2 === 0) return q + 1;
    }
    throw GIVE_UP;
  }
}

/** JSON whitespace: space, line feed, carriage return, tab. */
export function isSpace(c: number): boolean {
  return c === SPACE || c === LF || c === CR || c === TAB;
}

/**
 * The body's JSON value with its pixel arrays as Uint8Arrays, or undefined
 * when the fast path cannot be sure (the caller then uses JSON.parse).
 * `body` is UTF-8 (a byte-order mark already removed).
 */
export function parsePixelJson(buf: Buffer): Record<string, unknown> | undefined {
  const parser = new Parser(buf, (start, end) => buf.toString('utf8', start, end));
  try {
    parser.ws();
    const value = parser.object('top');
    parser.ws();
    return parser.pos === buf.length ? value : undefined;
  } catch (err) {
    if (err === GIVE_UP) return undefined;
    throw err;
  }
}
