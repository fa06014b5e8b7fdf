/** Signed prediction ids, the feedback dedup set, and label resolution. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveLabel } from '../../src/feedback/feedback';
import { ServiceError } from '../../src/core/errors';
import { ReceiptSigner, SeenIds } from '../../src/feedback/receipts';

const SECRET = Buffer.from('a-test-secret-of-32-bytes-length');
const LABELS = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const prediction = { model: 'dendritic', version: '3', arm: 'candidate', labelIndex: 7, confidence: 0.912345678 };

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ServiceError);
    return err.code;
  }
  throw new Error('expected a ServiceError');
}

describe('ReceiptSigner', () => {
  it('round-trips what was predicted, by whom and when', () => {
    let now = 1_700_000_000_000;
    const signer = new ReceiptSigner(SECRET, 3_600_000, () => now);
    const id = signer.issue(prediction);
    now += 1000;
    const r = signer.verify(id);
    assert.deepEqual({ ...r, nonce: undefined }, { ...prediction, confidence: 0.912346, issuedAt: 1_700_000_000_000, nonce: undefined });
    assert.notEqual(signer.issue(prediction), signer.issue(prediction), 'the nonce makes every id unique');
  });

  it('is accepted by another replica with the same secret, refused under another', () => {
    const id = new ReceiptSigner(SECRET, 3_600_000).issue(prediction);
    assert.equal(new ReceiptSigner(Buffer.from(SECRET), 3_600_000).verify(id).labelIndex, 7);
    assert.equal(
      codeOf(() => new ReceiptSigner(Buffer.from('another-secret-of-32-bytes-long!'), 3_600_000).verify(id)),
      'PERMISSION_DENIED',
    );
  });

  it('refuses altered, malformed and expired ids with distinct codes', () => {
    let now = 5_000_000;
    const signer = new ReceiptSigner(SECRET, 60_000, () => now);
    const id = signer.issue(prediction);
    const [payload, sig] = id.split('.');
    const wire = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const altered = `${Buffer.from(JSON.stringify({ ...wire, c: 1 })).toString('base64url')}.${sig}`;
    assert.equal(
      codeOf(() => signer.verify(altered)),
      'PERMISSION_DENIED',
    );
    assert.equal(
      codeOf(() => signer.verify(`${payload}.${sig.slice(0, -2)}`)),
      'PERMISSION_DENIED',
    );
    assert.equal(
      codeOf(() => signer.verify('no-dot-here')),
      'INVALID_ARGUMENT',
    );
    assert.equal(
      codeOf(() => signer.verify('a.b.c')),
      'INVALID_ARGUMENT',
    );
    assert.equal(
      codeOf(() => signer.verify(42)),
      'INVALID_ARGUMENT',
    );
    assert.equal(
      codeOf(() => signer.verify('x'.repeat(5000))),
      'INVALID_ARGUMENT',
    );
    now += 60_000;
    assert.equal(signer.verify(id).model, 'dendritic', 'valid up to the maximum age');
    now += 1;
    assert.equal(
      codeOf(() => signer.verify(id)),
      'FAILED_PRECONDITION',
    );
  });

  it('needs a secret of at least 16 bytes', () => {
    assert.throws(() => new ReceiptSigner(Buffer.from('short'), 1000), /at least 16 bytes/);
  });
});

describe('SeenIds', () => {
  it('counts an id once and forgets the oldest beyond its capacity', () => {
    const seen = new SeenIds(3);
    assert.equal(seen.add('a'), true);
    assert.equal(seen.add('a'), false);
    seen.add('b');
    seen.add('c');
    seen.add('d'); // evicts "a"
    assert.equal(seen.size, 3);
    assert.equal(seen.add('b'), false);
    assert.equal(seen.add('a'), true);
  });
});

describe('resolveLabel', () => {
  it('accepts a name (any case) or an index, and names the labels when wrong', () => {
    assert.equal(resolveLabel('Sneaker', LABELS), 7);
    assert.equal(resolveLabel('ankle boot', LABELS), 9);
    assert.equal(resolveLabel(3, LABELS), 3);
    assert.equal(resolveLabel('0', LABELS), 0);
    assert.equal(
      codeOf(() => resolveLabel(10, LABELS)),
      'INVALID_ARGUMENT',
    );
    assert.equal(
      codeOf(() => resolveLabel(-1, LABELS)),
      'INVALID_ARGUMENT',
    );
    assert.equal(
      codeOf(() => resolveLabel(undefined, LABELS)),
      'INVALID_ARGUMENT',
    );
    assert.throws(() => resolveLabel('Hat', LABELS), /expected one of: T-shirt\/top, Trouser/);
  });
});
