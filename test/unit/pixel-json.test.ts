/**
 * The fast path for pixel JSON bodies (src/transport/http/pixel-json.ts)
 * against JSON.parse, and the JSON body reading around it
 * (src/transport/http/body.ts parseJson), on many generated texts: pixel
 * arrays with whitespace, exponents, negatives, fractions, values out of
 * range, leading zeros, strings, nested junk, trailing commas; other fields
 * with any JSON value; repeated, escaped and `__proto__` keys; batch bodies;
 * texts cut or spliced into invalid JSON. The property: the fast path gives
 * JSON.parse's value (with Uint8Arrays for the pixel arrays) or gives up
 * (undefined), never a different value and never a value where JSON.parse
 * throws; and on the bodies clients send it does not give up.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ServiceError } from '../../src/core/errors';
import { NOT_JSON, parseJson } from '../../src/transport/http/body';
import { parsePixelJson } from '../../src/transport/http/pixel-json';

/** The value with every Uint8Array turned into an array of its numbers (what JSON.parse gives). */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    // defineProperty, not assignment: "__proto__" is an own key in JSON.parse's objects.
    for (const [k, x] of Object.entries(v))
      Object.defineProperty(out, k, { value: plain(x), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return v;
}

const THREW = Symbol('JSON.parse threw');

function reference(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return THREW;
  }
}

/** The property, for one text: same value as JSON.parse, or undefined; the value's pixel arrays typed. Returns the fast result. */
function agrees(text: string): Record<string, unknown> | undefined {
  const fast = parsePixelJson(Buffer.from(text, 'utf8'));
  if (fast === undefined) return undefined;
  const expected = reference(text);
  assert.notEqual(expected, THREW, `the fast path answered where JSON.parse throws: ${text.slice(0, 200)}`);
  assert.deepStrictEqual(plain(fast), expected, text.slice(0, 200));
  const typed = (o: unknown) => o && typeof o === 'object' && 'pixels' in o && Array.isArray((o as { pixels: unknown }).pixels);
  // A pixels array the fast path read is a Uint8Array: where it stayed an array, it was not read fast (only nested junk can be).
  if (typed(fast)) assert.fail(`top-level pixels left an array: ${text.slice(0, 200)}`);
  return fast;
}

const ws = fc.constantFrom('', '', ' ', '\n', '\t', '\r\n', '   ');
/** A pixel as clients write it, or written in every other way JSON allows (or does not). */
const pixelToken = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 0, max: 255 }).map(String) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '256',
      '999',
      '1000',
      '-1',
      '-0',
      '0.0',
      '1.5',
      '255.0',
      '1e2',
      '1E2',
      '2e-1',
      '1e999',
      '01',
      '00',
      '007',
      '"12"',
      'null',
      'true',
      '[1]',
      '[[0]]',
      '{}',
      '{"a":1}',
      '[]',
      '0x1',
      '+1',
      '.5',
      '5.',
      'NaN',
      '',
      '1 2',
      '"\\u0031"',
    ),
  },
  { weight: 2, arbitrary: fc.double({ noNaN: true }).map((d) => JSON.stringify(d)) },
  { weight: 1, arbitrary: fc.integer({ min: -1000, max: 100_000 }).map(String) },
);
const pixelArray = fc
  .tuple(fc.array(fc.tuple(ws, pixelToken, ws), { maxLength: 30 }), ws, fc.constantFrom(',', ',', ',', ',', ', ', ';', ',,'), fc.boolean())
  .map(([items, inner, sep, trailing]) => `[${inner}${items.map(([a, t, b]) => `${a}${t}${b}`).join(sep)}${trailing ? ',' : ''}]`);
/** Any JSON value, as text. */
const anyValue = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v));
const key = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('"pixels"', '"images"', '"model"', '"topK"', '"version"', '"routingKey"', '"abstain"') },
  { weight: 1, arbitrary: fc.constantFrom('"__proto__"', '"pi\\u0078els"', '"pixels\\n"', '"pixéls"', '"1"', '"constructor"', '""') },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }).map((s) => JSON.stringify(s)) },
);

/** An object's text from its members: `key: value` with whitespace anywhere. */
function objectText(members: Array<[string, string, string, string]>, open: string, close: string): string {
  return `${open}{${members.map(([a, k, b, v]) => `${a}${k}${b}:${a}${v}${b}`).join(',')}}${close}`;
}

const item = fc
  .tuple(
    fc.array(
      fc.tuple(
        ws,
        fc.oneof(key, fc.constant('"pixels"')),
        ws,
        fc.oneof({ weight: 3, arbitrary: pixelArray }, { weight: 1, arbitrary: anyValue }),
      ),
      { maxLength: 3 },
    ),
    ws,
    ws,
  )
  .map(([members, open, close]) => objectText(members, open, close));
const imagesArray = fc
  .tuple(fc.array(fc.oneof({ weight: 4, arbitrary: item }, { weight: 1, arbitrary: anyValue }), { maxLength: 5 }), ws)
  .map(([items, w]) => `[${w}${items.join(`,${w}`)}${w}]`);
const member = fc.tuple(
  ws,
  key,
  ws,
  fc.oneof({ weight: 3, arbitrary: pixelArray }, { weight: 2, arbitrary: imagesArray }, { weight: 2, arbitrary: anyValue }),
);
const body = fc.tuple(fc.array(member, { maxLength: 6 }), ws, ws).map(([members, open, close]) => objectText(members, open, close));

/** A valid body as a client sends it: integers 0..255, any whitespace, options in any order. */
const clientBody = fc
  .record({
    pixels: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 900 }),
    options: fc.record(
      { model: fc.string({ maxLength: 10 }), topK: fc.integer(), version: fc.constantFrom('1', 1), abstain: fc.boolean() },
      { requiredKeys: [] },
    ),
    spaces: fc.constantFrom(0, 1, 2),
    first: fc.boolean(),
  })
  .map(({ pixels, options, spaces, first }) =>
    JSON.stringify(first ? { pixels, ...options } : { ...options, pixels }, null, spaces === 0 ? undefined : spaces),
  );
const clientBatch = fc
  .record({
    images: fc.array(fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 800 }), { maxLength: 8 }),
    topK: fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined }),
    spaces: fc.constantFrom(0, 2),
  })
  .map(({ images, topK, spaces }) => JSON.stringify({ images: images.map((pixels) => ({ pixels })), topK }, null, spaces || undefined));

describe('fast pixel JSON parsing', () => {
  it('gives JSON.parse its value or gives up, on generated pixel bodies, batches and junk', () => {
    let answered = 0;
    fc.assert(
      fc.property(body, (text) => {
        if (agrees(text) !== undefined) answered++;
      }),
      { numRuns: 3000 },
    );
    // Not a vacuous property: the fast path answers a good share of these bodies (about a quarter).
    assert.ok(answered > 300, `the fast path answered only ${answered} of 3000`);
  });

  it('gives JSON.parse its value or gives up on texts cut short, spliced or prefixed', () => {
    const mutated = fc
      .tuple(
        fc.oneof(body, clientBody, clientBatch),
        fc.nat(),
        fc.nat(),
        fc.constantFrom('', ',', ']', '}', '[', '{', '"', '\\', '0', ' ', 'e', '-', '\u0000', '\u00e9'),
      )
      .map(([text, a, b, insert]) => {
        const i = a % (text.length + 1);
        const j = i + (b % 4);
        return `${text.slice(0, i)}${insert}${text.slice(j)}`;
      });
    fc.assert(
      fc.property(mutated, (text) => void agrees(text)),
      { numRuns: 3000 },
    );
  });

  it('reads the bodies clients send, single and batch, without giving up', () => {
    fc.assert(
      fc.property(clientBody, (text) => {
        const fast = agrees(text);
        assert.ok(fast !== undefined, `gave up on ${text.slice(0, 120)}`);
        assert.ok(fast.pixels instanceof Uint8Array);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(clientBatch, (text) => {
        const fast = agrees(text) as { images: Array<{ pixels: unknown }> } | undefined;
        assert.ok(fast !== undefined, `gave up on ${text.slice(0, 120)}`);
        for (const img of fast.images) assert.ok(img.pixels instanceof Uint8Array);
      }),
      { numRuns: 200 },
    );
  });

  it('gives up on every pixel written other than as plain digits 0..255, and on keys it cannot be sure of', () => {
    const zeros = (at: string) => `{"pixels":[0,${at},0]}`;
    for (const odd of ['256', '-1', '-0', '1.0', '1e2', '01', '"7"', 'null', '[0]', '1e999', '2E0']) {
      assert.equal(parsePixelJson(Buffer.from(zeros(odd))), undefined, odd);
    }
    for (const text of [
      '{"pixels":[1],"pixels":[2]}',
      '{"__proto__":{"pixels":[1]}}',
      '{"pi\\u0078els":[1]}',
      '{"pixels":[1]} x',
      '[{"pixels":[1]}]',
      '{"pixels":[1,]}',
      '{"pixels":[1 2]}',
    ]) {
      assert.equal(parsePixelJson(Buffer.from(text)), undefined, text);
    }
    // Strings ending in escaped backslashes or holding escaped quotes, around the pixels.
    for (const text of [
      '{"model":"a\\\\","pixels":[1,2]}',
      '{"model":"say \\"hi\\"","pixels":[3]}',
      '{"model":"\\\\\\"","pixels":[4],"x":["]","\\\\"]}',
    ]) {
      const value = agrees(text);
      assert.ok(value !== undefined, text);
      assert.deepStrictEqual(plain(value), JSON.parse(text));
    }
    const fast = parsePixelJson(Buffer.from(' {\n "topK" : 2 ,"pixels" :[ 0 ,\t255\r\n, 17 ] , "model":"baseline"}\n'));
    assert.deepStrictEqual(plain(fast), { topK: 2, pixels: [0, 255, 17], model: 'baseline' });
    assert.ok(fast!.pixels instanceof Uint8Array);
  });
});

describe('reading a JSON body as body-parser (strict) did', () => {
  /** Refused the same way with and without the pixel fast path. */
  const refused = (text: string | Buffer, message = NOT_JSON) => {
    for (const pixels of [true, false]) {
      assert.throws(
        () => parseJson(Buffer.isBuffer(text) ? text : Buffer.from(text), 'request body', pixels),
        (err: unknown) => err instanceof ServiceError && err.code === 'INVALID_ARGUMENT' && err.message === message,
      );
    }
  };

  it('drops a UTF-8 byte-order mark, takes an empty text as {}, and objects and arrays only', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const typed = parseJson(Buffer.concat([bom, Buffer.from('{"pixels":[1,2]}')]), 'request body', true) as { pixels: unknown };
    assert.ok(typed.pixels instanceof Uint8Array, 'the fast path, after the byte-order mark');
    assert.deepStrictEqual(plain(typed), { pixels: [1, 2] });
    assert.deepStrictEqual(parseJson(Buffer.from('{"pixels":[1,2]}')), { pixels: [1, 2] }, 'no fast path unless asked for');
    assert.deepStrictEqual(parseJson(Buffer.concat([bom, Buffer.from(' {"a":"é"}')])), { a: 'é' });
    assert.deepStrictEqual(parseJson(Buffer.alloc(0)), {});
    assert.deepStrictEqual(parseJson(bom), {});
    assert.deepStrictEqual(parseJson(Buffer.from(' [1,2]')), [1, 2]);
    for (const text of ['"text"', '5', 'null', 'true', ' x', '{"pixels": [', '{"a":NaN}', '\u000b{}', '{}}']) refused(text);
    assert.throws(
      () => parseJson(Buffer.from('{'), 'the JSON inference header'),
      (err: unknown) => err instanceof ServiceError && err.message === 'the JSON inference header is not valid JSON',
    );
  });

  it('gives JSON.parse its value for every generated body, or refuses what JSON.parse refuses', () => {
    fc.assert(
      fc.property(fc.oneof(body, clientBody, anyValue), (text) => {
        const expected = reference(text);
        const strict = /^[ \t\n\r]*[[{]/.test(text) && expected !== THREW;
        if (!strict) return refused(text);
        assert.deepStrictEqual(plain(parseJson(Buffer.from(text), 'request body', true)), expected);
        assert.deepStrictEqual(parseJson(Buffer.from(text)), expected);
      }),
      { numRuns: 1000 },
    );
  });
});
