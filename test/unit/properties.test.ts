/**
 * Property-based tests (fast-check) of the code that reads hostile input:
 * HTTP body parsing and base64 decoding, pixel validation, signed prediction
 * ids, and Open Inference Protocol v2 tensor decoding (REST JSON and gRPC).
 *
 * The common property: whatever a client sends yields a well-formed result or
 * a ServiceError with the right code, never a TypeError, RangeError or any
 * other exception (those become 500s). Valid inputs round-trip exactly.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { DataPlane, ModelInfo } from '../../src/core/dataplane';
import { type ErrorCode, ServiceError } from '../../src/core/errors';
import type { BatchItem, Classification, ImageInput } from '../../src/core/types';
import { validatePixels } from '../../src/preprocess/preprocessor';
import { ReceiptSigner } from '../../src/feedback/receipts';
import { decodeInputs } from '../../src/transport/grpc/oip';
import { joinLengthPrefixed, splitLengthPrefixed } from '../../src/transport/oip/codec';
import { flattenData, jsonInputs } from '../../src/transport/http/oip-routes';
import { decodeBase64, imageFromJson, optionsFrom, requireJsonObject } from '../../src/transport/http/parse';
import { checkShape, elementCount, imagesFrom, OUTPUTS, outputsFrom, requestedOutputs } from '../../src/transport/oip/codec';
import { OipService } from '../../src/transport/oip/service';

const RUNS = { numRuns: 300 };

type Outcome<T> = { ok: true; value: T } | { ok: false; error: ServiceError };

/** Run `fn`: its value, or the ServiceError it threw. Any other exception fails the property, named. */
function outcome<T>(fn: () => T): Outcome<T> {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    if (err instanceof ServiceError) return { ok: false, error: err };
    throw new assert.AssertionError({
      message: `expected a result or a ServiceError, got ${(err as Error)?.name}: ${(err as Error)?.message}`,
    });
  }
}

/** The ServiceError `fn` throws; fails if it returns or throws anything else, or the code is not one of `codes`. */
function refused(fn: () => unknown, codes: ErrorCode[] = ['INVALID_ARGUMENT']): ServiceError {
  const r = outcome(fn);
  if (r.ok)
    throw new assert.AssertionError({
      message: `expected a ServiceError ${codes.join('|')}, got a result: ${String(JSON.stringify(r.value))?.slice(0, 200)}`,
    });
  assert.ok(codes.includes(r.error.code), `code ${r.error.code} (${r.error.message}), expected ${codes.join('|')}`);
  return r.error;
}

/** Strings of any UTF-16 code units, lone surrogates included. */
const anyUnits = (max = 40) => fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: max });
const WHITESPACE = [' ', '\t', '\n', '\r\n', '\v', '\f', '\u00a0', '\u2028', '\u3000', '\ufeff'];

/** Insert the given strings into `s` at the given positions (taken modulo length + 1). */
function insertAt(s: string, inserts: Array<[number, string]>): string {
  let out = s;
  for (const [pos, piece] of inserts) {
    const p = pos % (out.length + 1);
    out = out.slice(0, p) + piece + out.slice(p);
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------
describe('decodeBase64 (property)', () => {
  const bytes = fc.uint8Array({ minLength: 1, maxLength: 200 }).map((a) => Buffer.from(a));
  const padded = (s: string) => s + '='.repeat((4 - (s.length % 4)) % 4);

  it('round-trips arbitrary bytes through standard base64, base64url (padded or not), a data: URL prefix and inserted whitespace', () => {
    fc.assert(
      fc.property(
        bytes,
        fc.constantFrom('base64', 'base64url', 'base64url-padded'),
        fc.option(fc.stringMatching(/^[a-zA-Z0-9.+/-]{1,24}$/), { nil: undefined }),
        fc.array(fc.tuple(fc.nat(), fc.constantFrom(...WHITESPACE)), { maxLength: 6 }),
        (buf, alphabet, mediaType, spaces) => {
          const encoded =
            alphabet === 'base64'
              ? buf.toString('base64')
              : alphabet === 'base64url'
                ? buf.toString('base64url')
                : padded(buf.toString('base64url'));
          const text = (mediaType === undefined ? '' : `data:${mediaType};base64,`) + insertAt(encoded, spaces);
          const out = decodeBase64(text, 'image');
          assert.ok(Buffer.isBuffer(out));
          assert.ok(out.equals(buf), `${JSON.stringify(text)} decoded to ${out.toString('hex')}, expected ${buf.toString('hex')}`);
        },
      ),
      RUNS,
    );
  });

  it('an arbitrary string decodes to exactly the bytes its base64 characters spell, or is refused as INVALID_ARGUMENT naming the field', () => {
    const b64chars = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=', ' ', '\n', '!', '.', ':', ';', ',', 'é'];
    const input = fc.oneof(
      anyUnits(60),
      fc.string({ unit: fc.constantFrom(...b64chars), maxLength: 60 }),
      fc.base64String({ maxLength: 60 }),
      fc
        .tuple(
          fc.constantFrom('data:image/png;base64,', 'DATA:x;base64,', 'data:;base64,', 'data:image/png,'),
          fc.base64String({ maxLength: 40 }),
        )
        .map(([a, b]) => a + b),
    );
    fc.assert(
      fc.property(input, (s) => {
        const r = outcome(() => decodeBase64(s, 'body.image'));
        if (!r.ok) {
          assert.equal(r.error.code, 'INVALID_ARGUMENT');
          assert.match(r.error.message, /^body\.image /);
          return;
        }
        // Accepted: after the data: URL prefix and whitespace, only one base64 alphabet and trailing padding...
        const text = s.replace(/^data:[a-z0-9.+/-]+;base64,/i, '').replace(/\s+/g, '');
        assert.match(text, /^(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}$/, `accepted ${JSON.stringify(s)}`);
        const body = text.replace(/=+$/, '');
        // ...no character ignored: 6 bits each, whole bytes only...
        assert.equal(r.value.length, Math.floor((body.length * 3) / 4), `accepted ${JSON.stringify(s)}`);
        // ...and re-encoding gives the same characters back (up to the spare bits of the last one).
        const again = (/[+/]/.test(body) ? r.value.toString('base64') : r.value.toString('base64url')).replace(/=+$/, '');
        assert.equal(again.length, body.length);
        assert.equal(again.slice(0, -1), body.slice(0, -1));
      }),
      { numRuns: 500 },
    );
  });

  it('a character outside the base64 alphabets anywhere in the data is refused, never skipped', () => {
    const junk = fc
      .oneof(fc.constantFrom('!', '.', '*', '%', ':', ',', '"', '\\', '\0', 'é', '\ud800', '😀'), anyUnits(1))
      .filter((c) => c.length > 0 && !/^[A-Za-z0-9+/_=-]+$/.test(c) && !/^\s+$/.test(c));
    fc.assert(
      fc.property(bytes, fc.boolean(), fc.nat(), junk, (buf, url, pos, c) => {
        const encoded = url ? buf.toString('base64url') : buf.toString('base64');
        refused(() => decodeBase64(insertAt(encoded, [[pos, c]]), 'image'));
      }),
      RUNS,
    );
  });

  it('mixing the standard and URL-safe alphabets is refused', () => {
    fc.assert(
      fc.property(
        fc.base64String({ minLength: 4, maxLength: 40 }),
        fc.constantFrom('+', '/'),
        fc.constantFrom('-', '_'),
        fc.nat(),
        fc.nat(),
        (s, std, url, i, j) => {
          const body = s.replace(/=+$/, '');
          refused(() =>
            decodeBase64(
              insertAt(body, [
                [i, std],
                [j, url],
              ]),
              'image',
            ),
          );
        },
      ),
      RUNS,
    );
  });

  it('non-strings, and strings that are empty once whitespace and the data: prefix are removed, are INVALID_ARGUMENT', () => {
    fc.assert(
      fc.property(
        fc.anything().filter((v) => typeof v !== 'string'),
        (v) => {
          assert.match(refused(() => decodeBase64(v, 'image')).message, /image must be a base64 string/);
        },
      ),
      RUNS,
    );
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...WHITESPACE), { maxLength: 5 }), fc.boolean(), (ws, prefix) => {
        assert.match(
          refused(() => decodeBase64((prefix ? 'data:image/png;base64,' : '') + ws.join(''), 'image')).message,
          /image is empty/,
        );
      }),
      { numRuns: 50 },
    );
  });

  it('padding alone is refused like an empty string', () => {
    for (const s of ['=', '==', ' = = ', 'data:image/png;base64,==']) refused(() => decodeBase64(s, 'image'));
  });
});

// ---------------------------------------------------------------------------
describe('imageFromJson, requireJsonObject, optionsFrom (property)', () => {
  const imageField = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((a) => Buffer.from(a).toString('base64')),
    fc.jsonValue(),
    fc.constant(undefined),
  );
  const pixelsField = fc.oneof(fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 20 }), fc.jsonValue(), fc.constant(undefined));
  const imageLike = fc.oneof(
    fc.jsonValue(),
    fc.anything(),
    fc.record({ image: imageField, pixels: pixelsField }, { requiredKeys: [] }),
    fc
      .tuple(
        fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 3 }),
        fc.record({ image: imageField, pixels: pixelsField }, { requiredKeys: [] }),
      )
      .map(([a, b]) => ({ ...a, ...b })),
  );

  it('imageFromJson: an object with exactly one of image (base64) / pixels (array) gives that image; anything else is INVALID_ARGUMENT naming where', () => {
    fc.assert(
      fc.property(imageLike, (v) => {
        const r = outcome(() => imageFromJson(v, 'images[3]'));
        const obj = isPlainObject(v) ? v : undefined;
        const hasImage = obj !== undefined && obj.image !== undefined;
        const hasPixels = obj !== undefined && obj.pixels !== undefined;
        if (!r.ok) {
          assert.equal(r.error.code, 'INVALID_ARGUMENT');
          assert.match(r.error.message, /^images\[3\]/);
          // Refused only when it had to be: a valid image or a pixel array is never turned down.
          const decodable = hasImage && !hasPixels && outcome(() => decodeBase64(obj!.image, 'x')).ok;
          assert.ok(
            !decodable && !(hasPixels && !hasImage && Array.isArray(obj!.pixels)),
            `refused ${JSON.stringify(v)}: ${r.error.message}`,
          );
          return;
        }
        assert.ok(obj !== undefined && hasImage !== hasPixels);
        const img = r.value;
        if (img.kind === 'encoded') {
          assert.ok(hasImage && Buffer.isBuffer(img.bytes));
          assert.ok(img.bytes.equals(decodeBase64(obj.image, 'x')));
        } else {
          assert.equal(img.kind, 'pixels');
          assert.ok(hasPixels && Array.isArray(obj.pixels));
          assert.equal(img.pixels, obj.pixels, 'the pixel array is passed on as is (validated later)');
        }
      }),
      { numRuns: 500 },
    );
  });

  it('imageFromJson round-trips an image sent as base64', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.boolean(), (a, url) => {
        const bytes = Buffer.from(a);
        const img = imageFromJson({ image: bytes.toString(url ? 'base64url' : 'base64') }, 'body');
        assert.equal(img.kind, 'encoded');
        assert.ok(img.kind === 'encoded' && img.bytes.equals(bytes));
      }),
      RUNS,
    );
  });

  it('requireJsonObject returns exactly the plain objects it is given and refuses everything else', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.anything({ withNullPrototype: true, withMap: true, withSet: true, withDate: true, withTypedArray: true }),
        ),
        (v) => {
          const r = outcome(() => requireJsonObject(v));
          if (isPlainObject(v)) assert.ok(r.ok && r.value === v);
          else
            assert.ok(
              !r.ok &&
                r.error.code === 'INVALID_ARGUMENT' &&
                (v === undefined ? /the JSON body is empty/ : /must be an object/).test(r.error.message),
            );
        },
      ),
      { numRuns: 500 },
    );
  });

  const fieldValue = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.integer(),
    fc.double(),
    fc.constantFrom(null, '', undefined, true),
    fc.array(fc.string(), { maxLength: 2 }),
    fc.jsonValue(),
  );
  const fields = fc.record(
    {
      model: fieldValue,
      version: fieldValue,
      routingKey: fieldValue,
      topK: fc.oneof(fieldValue, fc.integer({ min: -5, max: 20 }), fc.integer({ min: -5, max: 20 }).map(String)),
    },
    { requiredKeys: [] },
  );

  /** What optionsFrom should make of one value: absent, a value of the field's type, or a refusal. */
  const expectOption = (v: unknown, k: string, text: boolean): { ok: boolean; value?: string | number } => {
    if (v === undefined || v === null || v === '') return { ok: true, value: undefined };
    if (k === 'topK') {
      if (!text && typeof v === 'number' && Number.isInteger(v)) return { ok: true, value: v };
      if (text && typeof v === 'string' && /^-?[0-9]{1,15}$/.test(v)) return { ok: true, value: Number(v) };
      return { ok: false };
    }
    if (typeof v === 'string') return { ok: true, value: v };
    if (k === 'version' && !text && typeof v === 'number' && Number.isInteger(v)) return { ok: true, value: String(v) };
    return { ok: false };
  };
  const textValue = fc.oneof(fc.string({ maxLength: 12 }), fc.integer({ min: -5, max: 20 }).map(String), fc.constant(''));
  const textFields = fc.record({ model: textValue, version: textValue, routingKey: textValue, topK: textValue }, { requiredKeys: [] });

  it('optionsFrom: JSON keeps its types (strings; topK a JSON integer; version a string or integer), text sources parse topK; body before query, the header wins for the routing key; anything else is INVALID_ARGUMENT', () => {
    fc.assert(
      fc.property(
        fc.option(fields, { nil: undefined }),
        fc.boolean(),
        textFields,
        fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
        (body, bodyIsJson, query, header) => {
          const sources = bodyIsJson ? { json: body, query } : { form: body, query };
          const r = outcome(() => optionsFrom(sources, header));
          const read = (k: string) => {
            const b = expectOption((body as Record<string, unknown> | undefined)?.[k], k, !bodyIsJson);
            const q = expectOption(query[k as keyof typeof query], k, true);
            if (!b.ok || !q.ok) return { ok: false };
            return { ok: true, value: b.value ?? q.value };
          };
          const [m, v, k, t] = ['model', 'version', 'routingKey', 'topK'].map(read);
          const shouldPass = m.ok && v.ok && t.ok && k.ok;
          if (!r.ok) {
            assert.equal(r.error.code, 'INVALID_ARGUMENT');
            assert.ok(!shouldPass, `refused ${JSON.stringify({ body, bodyIsJson, query, header })}: ${r.error.message}`);
            return;
          }
          assert.ok(shouldPass, `accepted ${JSON.stringify({ body, bodyIsJson, query, header })}`);
          assert.deepEqual(Object.keys(r.value).sort(), ['abstain', 'model', 'routingKey', 'topK', 'transport', 'version']);
          assert.equal(r.value.transport, 'http');
          assert.equal(r.value.model, m.value);
          assert.equal(r.value.version, v.value);
          assert.equal(r.value.routingKey, header || k.value);
          assert.equal(r.value.topK, t.value);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('optionsFrom: an integer topK is read back as that integer (a JSON number, or digits in a form field or the query); a JSON string or a non-integer is refused', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e9, max: 1e9 }), fc.constantFrom('json', 'form', 'query'), (k, where) => {
        const sources =
          where === 'json'
            ? { json: { topK: k }, query: {} }
            : where === 'form'
              ? { form: { topK: String(k) }, query: {} }
              : { query: { topK: String(k) } };
        assert.equal(optionsFrom(sources, undefined).topK, k);
        if (where === 'json')
          assert.match(
            refused(() => optionsFrom({ json: { topK: String(k) }, query: {} }, undefined)).message,
            /topK must be an integer \(a JSON number\)/,
          );
      }),
      RUNS,
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.double({ noInteger: true }).map(String),
          fc.stringMatching(/^[a-z]{1,6}$/),
          fc.constantFrom('1.5', 'NaN', 'Infinity', '1e400', '--1'),
        ),
        (s) => {
          assert.match(refused(() => optionsFrom({ form: { topK: s }, query: {} }, undefined)).message, /topK must be an integer/);
        },
      ),
      RUNS,
    );
  });

  it('optionsFrom: a field that is not an option is refused, naming it, from any source', () => {
    fc.assert(
      fc.property(
        fc
          .string({ minLength: 1, maxLength: 12 })
          .filter((k) => !['model', 'version', 'topK', 'routingKey', 'abstain', '__proto__'].includes(k)),
        fc.constantFrom('form', 'query'),
        (k, where) => {
          const sources = where === 'form' ? { form: { [k]: 'x' }, query: {} } : { query: { [k]: 'x' } };
          assert.match(
            refused(() => optionsFrom(sources, undefined)).message,
            /^unknown field ".*" in the (form fields|query string); expected model, version, topK, routingKey, abstain$/,
          );
        },
      ),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------
describe('validatePixels (property)', () => {
  const inRange = fc.oneof(fc.double({ min: 0, max: 255, noNaN: true }), fc.integer({ min: 0, max: 255 }), fc.constantFrom(0, 255, -0));
  const valid = (n: number) => fc.array(inRange, { minLength: n, maxLength: n });
  const bad = fc.oneof(
    fc.constantFrom<unknown>(NaN, Infinity, -Infinity, -0.0001, 255.0001, -1, 256, Number.MAX_VALUE, -Number.MIN_VALUE),
    fc.double({ noNaN: true }).filter((v) => v < 0 || v > 255),
    fc.constantFrom<unknown>('0', '255', '', 'x', null, undefined, true, false, [], [5], [[0]], {}, { valueOf: 5 }),
    fc.string({ maxLength: 8 }),
    fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 3 }),
    fc.jsonValue().filter((v) => typeof v !== 'number'),
  );

  it('accepts exactly `expected` finite numbers in [0, 255] (arrays, Float32Array, Uint8Array), returning them unchanged', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 64 }).chain((n) => fc.tuple(fc.constant(n), valid(n))),
        ([n, px]) => {
          assert.equal(validatePixels(px, n), px);
          const f32 = Float32Array.from(px);
          assert.equal(validatePixels(f32, n), f32);
          const u8 = Uint8Array.from(px.map(Math.floor));
          assert.equal(validatePixels(u8, n), u8);
        },
      ),
      RUNS,
    );
    fc.assert(
      fc.property(valid(784), (px) => assert.equal(validatePixels(px, 784), px)),
      { numRuns: 50 },
    );
  });

  it('one bad entry anywhere is refused as INVALID_ARGUMENT naming its index', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }).chain((n) => fc.tuple(valid(n), fc.nat({ max: n - 1 }), bad)),
        ([px, i, v]) => {
          const arr: unknown[] = [...px];
          arr[i] = v;
          const err = refused(() => validatePixels(arr, arr.length));
          assert.ok(err.message.startsWith(`pixels[${i}] must be a number in 0..255`), err.message);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('non-finite or out-of-range values in a Float32Array are refused naming the index', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 64 })
          .chain((n) => fc.tuple(valid(n), fc.nat({ max: n - 1 }), fc.constantFrom(NaN, Infinity, -Infinity, -0.01, 256, 1e30))),
        ([px, i, v]) => {
          const f32 = Float32Array.from(px);
          f32[i] = v;
          assert.match(refused(() => validatePixels(f32, f32.length)).message, new RegExp(`^pixels\\[${i}\\]`));
        },
      ),
      RUNS,
    );
  });

  it('the wrong length is refused naming both lengths; a non-array is refused', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), (n, expected) => {
        fc.pre(n !== expected);
        const err = refused(() => validatePixels(new Array(n).fill(1), expected));
        assert.ok(err.message.includes(`${expected} values`) && err.message.endsWith(`got ${n}`), err.message);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(
        fc.anything().filter((v) => !Array.isArray(v)),
        fc.nat({ max: 800 }),
        (v, n) => {
          assert.match(refused(() => validatePixels(v, n)).message, /pixels must be an array/);
        },
      ),
      RUNS,
    );
  });

  it('a hostile entry gives a short message, never a RangeError or TypeError', () => {
    const deep = JSON.parse('['.repeat(10_000) + ']'.repeat(10_000));
    for (const v of [deep, 'x'.repeat(100_000), 1n]) {
      const px: unknown[] = [0, 0, v, 0];
      const err = refused(() => validatePixels(px, 4));
      assert.ok(err.message.length < 300, `message of ${err.message.length} characters`);
    }
  });
});

// ---------------------------------------------------------------------------
describe('ReceiptSigner.verify (property)', () => {
  const SECRET = Buffer.from('a-test-secret-of-32-bytes-length');
  const T0 = 1_700_000_000_000;
  const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
  const prediction = fc.record({
    model: fc.stringMatching(NAME),
    version: fc.stringMatching(/^[1-9][0-9]{0,8}$/),
    arm: fc.oneof(fc.stringMatching(NAME), fc.constantFrom('explicit', 'default')),
    labelIndex: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.nat()),
    confidence: fc.double({ min: 0, max: 1, noNaN: true }),
    // The router accepts any experiment name of 1..128 characters.
    experiment: fc.option(
      fc
        .oneof(
          anyUnits(128),
          fc.string({ unit: 'binary', maxLength: 128 }),
          fc.constantFrom('\u0001'.repeat(128), '\ud800'.repeat(128), '"'.repeat(128)),
        )
        .filter((s) => s.length > 0),
      { nil: undefined },
    ),
  });
  const signer = (now = () => T0) => new ReceiptSigner(SECRET, 3_600_000, now);
  const B64URL = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'];
  const OTHER = [...B64URL, '+', '/', '=', '.', '!', '~', ' ', '\n', '\0', 'é', '\ud800'];

  it('round-trips what was predicted, for arbitrary models, arms, labels, confidences and experiment names', () => {
    fc.assert(
      fc.property(prediction, fc.integer({ min: 0, max: 3_600_000 }), (p, age) => {
        const s = new ReceiptSigner(SECRET, 3_600_000, () => T0 + age);
        const issuer = signer();
        const id = issuer.issue(p);
        const r = s.verify(id);
        assert.equal(r.model, p.model);
        assert.equal(r.version, p.version);
        assert.equal(r.arm, p.arm);
        assert.equal(r.labelIndex, p.labelIndex);
        assert.ok(r.confidence === Math.round(p.confidence * 1e6) / 1e6, `${r.confidence} vs ${p.confidence}`);
        assert.ok(Math.abs(r.confidence - p.confidence) <= 5e-7 + 1e-12);
        assert.equal(r.issuedAt, T0);
        assert.equal(r.experiment, p.experiment);
        assert.equal(typeof r.nonce, 'string');
        assert.notEqual(issuer.issue(p), id, 'ids are unique');
      }),
      RUNS,
    );
  });

  it('any single-character change, deletion, insertion or truncation of a valid id is refused', () => {
    const edit = fc.oneof(
      fc.record({
        op: fc.constant('replace' as const),
        at: fc.nat(),
        ch: fc.oneof(
          fc.constantFrom(...OTHER),
          anyUnits(1).filter((c) => c.length === 1),
        ),
      }),
      fc.record({ op: fc.constant('delete' as const), at: fc.nat(), ch: fc.constant('') }),
      fc.record({
        op: fc.constant('insert' as const),
        at: fc.nat(),
        ch: fc.oneof(
          fc.constantFrom(...OTHER),
          anyUnits(1).filter((c) => c.length === 1),
        ),
      }),
      fc.record({ op: fc.constant('truncate' as const), at: fc.nat(), ch: fc.constant('') }),
    );
    fc.assert(
      fc.property(prediction, edit, (p, e) => {
        const s = signer();
        const id = s.issue(p);
        const at = e.at % (e.op === 'insert' ? id.length + 1 : id.length);
        let altered: string;
        if (e.op === 'replace') altered = id.slice(0, at) + e.ch + id.slice(at + 1);
        else if (e.op === 'delete') altered = id.slice(0, at) + id.slice(at + 1);
        else if (e.op === 'insert') altered = id.slice(0, at) + e.ch + id.slice(at);
        else altered = id.slice(0, at);
        fc.pre(altered !== id);
        refused(() => s.verify(altered), ['PERMISSION_DENIED', 'INVALID_ARGUMENT']);
      }),
      { numRuns: 500 },
    );
  });

  it('exhaustively: every one-character replacement, insertion and deletion of one id is refused', () => {
    // Random edits rarely hit the id's last character, where base64 has spare bits.
    const s = signer();
    const id = s.issue({ model: 'dendritic', version: '3', arm: 'candidate', labelIndex: 7, confidence: 0.91, experiment: 'exp-1' });
    const accepted: string[] = [];
    const tryId = (altered: string) => {
      if (altered === id) return;
      if (outcome(() => s.verify(altered)).ok) accepted.push(altered);
    };
    for (let i = 0; i <= id.length; i++) {
      for (const ch of OTHER) {
        if (i < id.length) tryId(id.slice(0, i) + ch + id.slice(i + 1));
        tryId(id.slice(0, i) + ch + id.slice(i));
      }
      if (i < id.length) tryId(id.slice(0, i) + id.slice(i + 1));
      tryId(id.slice(0, i));
    }
    assert.deepEqual(accepted, [], `accepted variants of ${id}`);
  });

  it('arbitrary strings, forged signatures and non-strings are refused with a ServiceError', () => {
    const s = signer();
    const forged = fc
      .tuple(prediction, fc.stringMatching(/^[A-Za-z0-9_-]{43}$/))
      .map(
        ([p, sig]) =>
          `${Buffer.from(JSON.stringify({ m: p.model, v: p.version, a: p.arm, c: p.labelIndex, p: p.confidence, t: T0, n: 'AAAAAAAA' })).toString('base64url')}.${sig}`,
      );
    fc.assert(
      fc.property(
        fc.oneof(
          anyUnits(200),
          fc.string({ unit: fc.constantFrom(...OTHER), maxLength: 200 }),
          forged,
          fc.anything().filter((v) => typeof v !== 'string'),
        ),
        (v) => {
          refused(() => s.verify(v), ['PERMISSION_DENIED', 'INVALID_ARGUMENT']);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('ids signed under another secret are refused as PERMISSION_DENIED', () => {
    fc.assert(
      fc.property(prediction, fc.uint8Array({ minLength: 16, maxLength: 64 }), (p, other) => {
        const key = Buffer.from(other);
        fc.pre(!key.equals(SECRET));
        const id = new ReceiptSigner(key, 3_600_000, () => T0).issue(p);
        refused(() => signer().verify(id), ['PERMISSION_DENIED']);
        refused(() => new ReceiptSigner(key, 3_600_000, () => T0).verify(signer().issue(p)), ['PERMISSION_DENIED']);
      }),
      RUNS,
    );
  });

  it('an id is accepted up to and including its maximum age, refused as FAILED_PRECONDITION after', () => {
    fc.assert(
      fc.property(
        prediction,
        fc.integer({ min: 1, max: 30 * 86_400_000 }),
        fc.integer({ min: 0, max: 4e12 }),
        fc.oneof(
          fc.integer({ min: -3, max: 3 }).map((d) => ({ boundary: true, d })),
          fc.integer({ min: -1e10, max: 1e10 }).map((d) => ({ boundary: false, d })),
        ),
        (p, maxAge, t0, delta) => {
          let now = t0;
          const s = new ReceiptSigner(SECRET, maxAge, () => now);
          const id = s.issue(p);
          const age = delta.boundary ? maxAge + delta.d : delta.d;
          now = t0 + age;
          const r = outcome(() => s.verify(id));
          if (age <= maxAge) assert.ok(r.ok && r.value.issuedAt === t0, `age ${age} <= ${maxAge} refused`);
          else
            assert.ok(
              !r.ok && r.error.code === 'FAILED_PRECONDITION' && /expired/.test(r.error.message),
              `age ${age} > ${maxAge} accepted`,
            );
        },
      ),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------
describe('Open Inference Protocol v2 tensor decoding (property)', () => {
  const LABELS = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
  const infoFor = (h: number, w: number): ModelInfo => ({
    name: 'baseline',
    version: '1',
    versions: ['1'],
    format: 'onnx',
    labels: LABELS,
    inputName: 'input',
    inputShape: [1, 1, h, w],
    pixelsPerImage: h * w,
  });
  const dims = fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }));

  /** Nest `flat` row-major into `shape` (OIP allows `data` nested or flat). */
  function reshape(flat: unknown[], shape: number[]): unknown[] {
    if (shape.length <= 1) return flat;
    const inner = elementCount(shape.slice(1));
    const out: unknown[] = [];
    for (let i = 0; i < shape[0]; i++) out.push(reshape(flat.slice(i * inner, (i + 1) * inner), shape.slice(1)));
    return out;
  }

  /** A valid REST tensor for n images of h x w, with the rows it carries. */
  const validTensor = (h: number, w: number) =>
    fc.integer({ min: 0, max: 4 }).chain((n) => {
      const per = h * w;
      const pixels = fc
        .tuple(
          fc.array(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: per, maxLength: per }), { minLength: n, maxLength: n }),
          fc.constantFrom<number[]>([n, h, w], [n, 1, h, w], [n, per]),
          fc.boolean(),
        )
        .map(([rows, shape, nested]) => ({
          kind: 'pixels' as const,
          rows: rows as unknown[],
          tensor: { name: 'pixels', datatype: 'UINT8', shape, data: nested ? reshape(rows.flat(), shape) : rows.flat() },
        }));
      const fp32 = fc
        .tuple(
          fc.array(
            fc.array(
              fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }).map((v) => v + 0 /* JSON has no -0 */),
              { minLength: per, maxLength: per },
            ),
            { minLength: n, maxLength: n },
          ),
          fc.boolean(),
        )
        .map(([rows, nested]) => ({
          kind: 'normalized' as const,
          rows: rows as unknown[],
          tensor: { name: 'input', datatype: 'FP32', shape: [n, 1, h, w], data: nested ? reshape(rows.flat(), [n, 1, h, w]) : rows.flat() },
        }));
      const images = fc
        .tuple(
          fc.array(
            fc.uint8Array({ minLength: 1, maxLength: 40 }).map((a) => Buffer.from(a)),
            { minLength: n, maxLength: n },
          ),
          fc.boolean(),
        )
        .map(([rows, url]) => ({
          kind: 'encoded' as const,
          rows: rows as unknown[],
          tensor: { name: 'image', datatype: 'BYTES', shape: [n], data: rows.map((b) => b.toString(url ? 'base64url' : 'base64')) },
        }));
      return fc.oneof(pixels, fp32, images);
    });

  const rowOf = (img: ImageInput): unknown =>
    img.kind === 'pixels' ? Array.from(img.pixels) : img.kind === 'normalized' ? Array.from(img.values) : img.bytes;

  it('valid tensors round-trip through the REST JSON form: flat or nested data, every accepted shape', () => {
    fc.assert(
      fc.property(
        dims.chain(([h, w]) => fc.tuple(fc.constant(infoFor(h, w)), validTensor(h, w))),
        ([info, t]) => {
          const body = JSON.parse(JSON.stringify({ inputs: [t.tensor] })) as Record<string, unknown>;
          const images = imagesFrom(jsonInputs(body), info);
          assert.equal(images.length, t.rows.length);
          images.forEach((img, i) => {
            assert.equal(img.kind, t.kind);
            if (img.kind === 'encoded') assert.ok(img.bytes.equals(t.rows[i] as Buffer));
            else assert.deepEqual(rowOf(img), t.rows[i]);
          });
        },
      ),
      RUNS,
    );
  });

  /** A tensor made wrong in one way, or made up. */
  const hostileTensor = (h: number, w: number) =>
    fc.oneof(
      {
        weight: 4,
        arbitrary: validTensor(h, w).chain(({ tensor }) =>
          fc.oneof(
            fc
              .record({ field: fc.constantFrom('name', 'datatype', 'shape', 'data'), v: fc.jsonValue() })
              .map(({ field, v }) => ({ ...tensor, [field]: v })),
            fc
              .tuple(fc.nat(), fc.integer({ min: -2, max: 2 }))
              .map(([i, d]) => ({ ...tensor, shape: tensor.shape.map((s, j) => (j === i % tensor.shape.length ? s + d : s)) })),
            fc.tuple(fc.nat(), fc.jsonValue()).map(([i, v]) => {
              const data = (tensor.data as unknown[]).flat(4);
              if (data.length > 0) data[i % data.length] = v;
              return { ...tensor, data };
            }),
            fc.nat().map((k) => ({ ...tensor, data: (tensor.data as unknown[]).flat(4).slice(0, k % 50) })),
            fc.constantFrom('FP32', 'UINT8', 'BYTES', 'INT64', 'FP16', '').map((datatype) => ({ ...tensor, datatype })),
            fc.constantFrom('pixels', 'input', 'image').map((name) => ({ ...tensor, name })),
          ),
        ),
      },
      {
        weight: 1,
        arbitrary: fc.record(
          {
            name: fc.oneof(fc.constantFrom('pixels', 'input', 'image'), fc.string()),
            datatype: fc.oneof(fc.constantFrom('UINT8', 'FP32', 'BYTES'), fc.jsonValue()),
            shape: fc.oneof(fc.array(fc.integer({ min: -1, max: 4 }), { maxLength: 4 }), fc.jsonValue()),
            data: fc.oneof(fc.array(fc.oneof(fc.integer({ min: -1, max: 256 }), fc.base64String(), fc.double())), fc.jsonValue()),
          },
          { requiredKeys: [] },
        ),
      },
      { weight: 1, arbitrary: fc.jsonValue() },
    );

  it('any JSON body decodes to well-formed images or an INVALID_ARGUMENT, never another exception', () => {
    const body = dims.chain(([h, w]) =>
      fc.tuple(
        fc.constant(infoFor(h, w)),
        fc.oneof(
          { weight: 1, arbitrary: fc.jsonValue() },
          {
            weight: 1,
            arbitrary: fc.record(
              {
                inputs: fc.oneof(fc.array(hostileTensor(h, w), { maxLength: 2 }), fc.jsonValue()),
                id: fc.jsonValue(),
                outputs: fc.jsonValue(),
              },
              { requiredKeys: [] },
            ),
          },
          { weight: 6, arbitrary: hostileTensor(h, w).map((t) => ({ inputs: [t] })) },
        ),
      ),
    );
    fc.assert(
      fc.property(body, ([info, b]) => {
        const r = outcome(() => imagesFrom(jsonInputs(requireJsonObject(b)), info));
        if (!r.ok) return assert.equal(r.error.code, 'INVALID_ARGUMENT');
        const t = (b as { inputs: Array<{ name: string; shape: number[] }> }).inputs[0];
        assert.equal(r.value.length, t.shape[0]);
        for (const img of r.value) {
          if (img.kind === 'encoded') assert.ok(Buffer.isBuffer(img.bytes));
          else if (img.kind === 'pixels')
            assert.ok(
              img.pixels.length === info.pixelsPerImage && Array.from(img.pixels).every((v) => Number.isInteger(v) && v >= 0 && v <= 255),
            );
          else assert.ok(img.values.length === info.pixelsPerImage && Array.from(img.values).every(Number.isFinite));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('flattenData is row-major for any nesting and refuses more than 16 levels with INVALID_ARGUMENT, at any depth', () => {
    fc.assert(
      fc.property(fc.array(fc.integer(), { maxLength: 60 }), fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 4 }), (flat, inner) => {
        const per = elementCount(inner);
        const rows = Math.floor(flat.length / per);
        const data = flat.slice(0, rows * per);
        assert.deepEqual(flattenData(reshape(data, [rows, ...inner]), 'inputs[0]'), data);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), (depth) => {
        const nested = JSON.parse('['.repeat(depth) + '1' + ']'.repeat(depth));
        const r = outcome(() => flattenData(nested, 'x'));
        if (depth <= 16) assert.ok(r.ok && r.value.length === 1);
        else assert.ok(!r.ok && /nested deeper than 16/.test(r.error.message));
      }),
      { numRuns: 40 },
    );
  });

  it('checkShape accepts exactly non-empty lists of non-negative integers', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(fc.integer({ min: -2, max: 10 }), { maxLength: 5 }),
          fc.array(fc.oneof(fc.double(), fc.string(), fc.constant(null)), { maxLength: 3 }),
          fc.jsonValue(),
        ),
        (shape) => {
          const r = outcome(() => checkShape(shape, 'inputs[0]'));
          const good =
            Array.isArray(shape) && shape.length > 0 && shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0);
          if (good) assert.ok(r.ok && r.value === shape);
          else assert.ok(!r.ok && r.error.code === 'INVALID_ARGUMENT' && r.error.message.startsWith('inputs[0].shape'));
        },
      ),
      RUNS,
    );
  });

  it('requestedOutputs: all outputs when none are asked, the known names as asked, else INVALID_ARGUMENT naming the first unknown one', () => {
    fc.assert(
      fc.property(
        fc.option(fc.array(fc.oneof(fc.constantFrom(...OUTPUTS), fc.string({ maxLength: 12 })), { maxLength: 5 }), { nil: undefined }),
        (names) => {
          // A model with an out-of-distribution score has every output.
          const info = { labels: Array(10).fill('x'), ood: { score: 'energy', threshold: 1, falseFlagRate: 0.05 } } as unknown as ModelInfo;
          const r = outcome(() => requestedOutputs(names, info));
          const unknown = names?.find((n) => !(OUTPUTS as readonly string[]).includes(n));
          if (unknown !== undefined) return assert.ok(!r.ok && r.error.message.startsWith(`unknown output "${unknown}"`));
          assert.ok(r.ok);
          assert.deepEqual(r.value, names && names.length > 0 ? names : [...OUTPUTS]);
        },
      ),
      RUNS,
    );
  });

  const classification = fc
    .tuple(
      fc.shuffledSubarray([...LABELS.keys()], { minLength: 1 }),
      fc.array(fc.float({ min: 0, max: 1, noNaN: true }), { minLength: 10, maxLength: 10 }),
      fc.string({ maxLength: 20 }),
    )
    .map(([order, conf, id]): Classification => {
      const top = order.map((k, j) => ({ label: LABELS[k], labelIndex: k, confidence: conf[j] }));
      return {
        ...top[0],
        predictionId: id,
        model: 'baseline',
        version: '1',
        arm: 'default',
        top,
        timings: { preprocessMs: 0, inferenceMs: 0, totalMs: 0 },
      };
    });

  it('outputsFrom: shapes match the data, and each row holds its classification', () => {
    fc.assert(
      fc.property(fc.array(classification, { maxLength: 5 }), fc.shuffledSubarray([...OUTPUTS]), (results, wanted) => {
        const outs = outputsFrom(results, LABELS.length, wanted);
        assert.deepEqual(
          outs.map((o) => o.name),
          wanted,
        );
        const n = results.length;
        for (const o of outs) {
          assert.equal(o.data.length, elementCount(o.shape));
          if (o.name === 'probabilities') {
            assert.deepEqual(o.shape, [n, LABELS.length]);
            const probs = o.data as Float32Array;
            results.forEach((r, i) => {
              const expected = new Array(LABELS.length).fill(0);
              for (const p of r.top) expected[p.labelIndex] = Math.fround(p.confidence);
              assert.deepEqual(Array.from(probs.subarray(i * LABELS.length, (i + 1) * LABELS.length)), expected);
            });
          } else if (o.name === 'ood_score') {
            assert.deepEqual(o.shape, [n]);
            assert.deepEqual(
              Array.from(o.data as Float32Array),
              results.map((r) => Math.fround(r.ood?.score ?? NaN)),
            );
          } else {
            assert.deepEqual(o.shape, [n]);
            // An abstained row has no class: -1 and "" (none of these generated rows abstains unless it says so).
            const expected: Record<string, (r: Classification) => unknown> = {
              label_index: (r: Classification) => r.labelIndex ?? -1,
              label: (r: Classification) => r.label ?? '',
              prediction_id: (r: Classification) => r.predictionId,
              abstained: (r: Classification) => r.abstained ?? '',
            };
            assert.deepEqual(o.data, results.map(expected[o.name]));
          }
        }
      }),
      RUNS,
    );
  });

  it('infer: valid requests reach the data plane image for image; the first failed image fails the request naming its index', async () => {
    await fc.assert(
      fc.asyncProperty(
        dims.chain(([h, w]) => fc.tuple(fc.constant(infoFor(h, w)), validTensor(h, w))),
        fc.array(
          fc.option(fc.constantFrom<ErrorCode>('INVALID_ARGUMENT', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'), {
            nil: undefined,
            freq: 3,
          }),
          { minLength: 4, maxLength: 4 },
        ),
        classification,
        async ([info, t], failures, c) => {
          let seen: ImageInput[] = [];
          const dataplane = {
            modelInfo: () => info,
            classifyBatch: async (images: ImageInput[]): Promise<BatchItem[]> => {
              seen = images;
              return images.map((_, i) => (failures[i] ? { error: { code: failures[i]!, message: `bad ${i}` } } : c));
            },
          } as unknown as DataPlane;
          const inputs = jsonInputs(JSON.parse(JSON.stringify({ inputs: [t.tensor] })));
          const run = new OipService(dataplane, { name: 'test', version: '0' })
            .infer({ model: 'baseline', inputs, transport: 'oip-http' })
            .then(
              (value) => ({ ok: true as const, value }),
              (error: unknown) => {
                assert.ok(error instanceof ServiceError, String(error));
                return { ok: false as const, error };
              },
            );
          const r = await run;
          const n = t.rows.length;
          if (n === 0) return assert.ok(!r.ok && /no images/.test(r.error.message));
          assert.deepEqual(seen.map(rowOf), t.rows);
          const firstBad = failures.slice(0, n).findIndex((f) => f !== undefined);
          if (firstBad >= 0)
            return assert.ok(!r.ok && r.error.code === failures[firstBad] && r.error.message === `image ${firstBad}: bad ${firstBad}`);
          assert.ok(r.ok);
          assert.deepEqual(
            r.value.outputs.map((o) => o.name),
            OUTPUTS.filter((o) => o !== 'ood_score'), // the generated model ships no OOD score
          );
          assert.deepEqual(r.value.outputs.find((o) => o.name === 'label_index')!.data, new Array(n).fill(c.labelIndex));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('gRPC BYTES raw form: length-prefixed split and join are inverse; arbitrary bytes split or are INVALID_ARGUMENT', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)),
          { maxLength: 6 },
        ),
        (items) => {
          const joined = joinLengthPrefixed(items);
          assert.deepEqual(
            splitLengthPrefixed(joined, 'x').map((b) => b.toString('hex')),
            items.map((b) => b.toString('hex')),
          );
        },
      ),
      RUNS,
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 40 }),
          fc
            .array(
              fc.oneof(
                fc.constant([3, 0, 0, 0]),
                fc.uint8Array({ maxLength: 5 }).map((a) => [...a]),
              ),
              { maxLength: 8 },
            )
            .map((p) => Uint8Array.from(p.flat())),
        ),
        (a) => {
          const buf = Buffer.from(a);
          const r = outcome(() => splitLengthPrefixed(buf, 'input "image"'));
          if (r.ok) assert.ok(joinLengthPrefixed(r.value).equals(buf));
          else assert.ok(r.error.code === 'INVALID_ARGUMENT' && r.error.message.startsWith('input "image": '));
        },
      ),
      RUNS,
    );
  });

  it('gRPC raw FP32 and UINT8 tensors round-trip bit for bit', () => {
    fc.assert(
      fc.property(
        dims,
        fc.integer({ min: 0, max: 3 }),
        fc.array(fc.float(), { maxLength: 100 }),
        fc.uint8Array({ maxLength: 100 }),
        ([h, w], n, floats, bytes) => {
          const per = h * w;
          const f = Float32Array.from({ length: n * per }, (_, i) => floats[i % Math.max(1, floats.length)] ?? 0);
          const fBuf = Buffer.from(f.buffer);
          const u = Uint8Array.from({ length: n * per }, (_, i) => bytes[i % Math.max(1, bytes.length)] ?? 0);
          const { inputs, raw } = decodeInputs({
            model_name: 'baseline',
            model_version: '',
            id: '',
            outputs: [],
            inputs: [
              { name: 'input', datatype: 'FP32', shape: [n, 1, h, w] },
              { name: 'pixels', datatype: 'UINT8', shape: [n, h, w] },
            ],
            raw_input_contents: [fBuf, Buffer.from(u)],
          });
          assert.equal(raw, true);
          assert.deepEqual(
            Buffer.from((inputs[0].data as Float32Array).buffer, (inputs[0].data as Float32Array).byteOffset, n * per * 4).toString('hex'),
            fBuf.toString('hex'),
          );
          assert.deepEqual(Array.from(inputs[1].data as Uint8Array), Array.from(u));
          const rows = imagesFrom([inputs[1]], infoFor(h, w));
          assert.deepEqual(
            rows.map(rowOf),
            Array.from({ length: n }, (_, i) => Array.from(u.subarray(i * per, (i + 1) * per))),
          );
        },
      ),
      RUNS,
    );
  });

  it('any well-typed gRPC request decodes to well-formed images or an INVALID_ARGUMENT', () => {
    const contents = fc.record(
      {
        fp32_contents: fc.array(fc.float(), { maxLength: 40 }),
        uint_contents: fc.array(fc.oneof(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 ** 32 - 1 })), { maxLength: 40 }),
        bytes_contents: fc.array(
          fc.uint8Array({ maxLength: 10 }).map((a) => Buffer.from(a)),
          { maxLength: 4 },
        ),
      },
      { requiredKeys: [] },
    );
    const input = fc.record({
      name: fc.oneof(fc.constantFrom('pixels', 'input', 'image'), fc.string({ maxLength: 8 })),
      datatype: fc.oneof(fc.constantFrom('UINT8', 'FP32', 'BYTES', 'INT32'), fc.string({ maxLength: 6 })),
      shape: fc.array(fc.oneof(fc.integer({ min: -1, max: 6 }), fc.integer({ min: -(2 ** 40), max: 2 ** 53 })), { maxLength: 4 }),
      contents: fc.option(contents, { nil: undefined }),
    });
    const made = fc.tuple(
      dims,
      fc.array(input, { maxLength: 2 }),
      fc.array(
        fc.uint8Array({ maxLength: 60 }).map((a) => Buffer.from(a)),
        { maxLength: 2 },
      ),
    );
    /** A valid request (contents or raw) for n images, then made wrong in one way (or not). */
    const nearlyValid = dims.chain(([h, w]) =>
      fc
        .record({
          n: fc.integer({ min: 0, max: 3 }),
          kind: fc.constantFrom('pixels', 'input', 'image'),
          raw: fc.boolean(),
          seed: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 }),
          edit: fc.constantFrom('none', 'shape+1', 'shape-1', 'drop', 'append', 'datatype', 'field', 'name'),
          at: fc.nat(),
        })
        .map(({ n, kind, raw, seed, edit, at }) => {
          const per = h * w;
          const values = Array.from({ length: kind === 'image' ? n : n * per }, (_, i) => seed[i % seed.length]);
          const t: { name: string; datatype: string; shape: number[]; contents?: Record<string, unknown> } = {
            name: kind,
            datatype: kind === 'pixels' ? 'UINT8' : kind === 'input' ? 'FP32' : 'BYTES',
            shape: kind === 'pixels' ? [n, h, w] : kind === 'input' ? [n, 1, h, w] : [n],
          };
          let items: number[] | Buffer[] = kind === 'image' ? values.map((v) => Buffer.alloc(1 + (v % 5), v)) : values;
          if (edit === 'drop') items = items.slice(0, -1) as typeof items;
          if (edit === 'append') items = [...items, kind === 'image' ? Buffer.from([1]) : 1] as typeof items;
          if (edit === 'shape+1' || edit === 'shape-1')
            t.shape = t.shape.map((d, j) => (j === at % t.shape.length ? Math.max(0, d + (edit === 'shape+1' ? 1 : -1)) : d));
          if (edit === 'datatype') t.datatype = ['UINT8', 'FP32', 'BYTES'][at % 3];
          if (edit === 'name') t.name = ['pixels', 'input', 'image'][at % 3];
          const field =
            (edit === 'field' ? ['uint_contents', 'fp32_contents', 'bytes_contents'][at % 3] : undefined) ??
            (kind === 'pixels' ? 'uint_contents' : kind === 'input' ? 'fp32_contents' : 'bytes_contents');
          let rawBuf: Buffer[] = [];
          if (!raw) t.contents = { [field]: items };
          else if (kind === 'image') rawBuf = [joinLengthPrefixed(items as Buffer[])];
          else if (kind === 'pixels') rawBuf = [Buffer.from(items as number[])];
          else rawBuf = [Buffer.from(Float32Array.from(items as number[]).buffer)];
          return [[h, w], [t], rawBuf] as [[number, number], (typeof t)[], Buffer[]];
        }),
    );
    fc.assert(
      fc.property(fc.oneof(made, nearlyValid), ([[h, w], inputs, raw]) => {
        const info = infoFor(h, w);
        const r = outcome(() =>
          imagesFrom(
            decodeInputs({ model_name: 'baseline', model_version: '', id: '', outputs: [], inputs, raw_input_contents: raw }).inputs,
            info,
          ),
        );
        if (!r.ok) return assert.equal(r.error.code, 'INVALID_ARGUMENT');
        assert.equal(r.value.length, inputs[0].shape[0]);
        for (const img of r.value) {
          if (img.kind === 'encoded') assert.ok(Buffer.isBuffer(img.bytes));
          else if (img.kind === 'pixels')
            assert.ok(
              img.pixels.length === info.pixelsPerImage && Array.from(img.pixels).every((v) => Number.isInteger(v) && v >= 0 && v <= 255),
            );
          else assert.equal(img.values.length, info.pixelsPerImage);
        }
      }),
      { numRuns: 500 },
    );
  });
});
