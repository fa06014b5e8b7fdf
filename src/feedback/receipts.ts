/**
 * Prediction ids are signed receipts: what was predicted, by which model and
 * arm, and when, under an HMAC-SHA256 of a shared secret. Feedback can then
 * reach any replica (no shared store): the replica verifies the signature and
 * the age and reads the prediction back out of the id.
 *
 *   id = base64url(payload JSON) "." base64url(HMAC-SHA256(secret, payload))
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ServiceError } from '../core/errors';

export interface Receipt {
  model: string;
  version: string;
  arm: string;
  /** Predicted class index. */
  labelIndex: number;
  /** Calibrated top-1 confidence. */
  confidence: number;
  /** Prediction time, ms since the epoch. */
  issuedAt: number;
  /** Random part: two identical predictions in the same millisecond get different ids. */
  nonce: string;
  /** The A/B experiment the prediction counted in, if any. */
  experiment?: string;
  /** The service abstained (answered without a label): feedback on it is counted apart from accuracy. */
  abstained?: boolean;
}

interface Wire {
  m: string;
  v: string;
  a: string;
  c: number;
  p: number;
  t: number;
  n: string;
  e?: string;
  /** 1 when the prediction abstained. */
  x?: 1;
}

/**
 * Longest id verify() will look at (the HMAC is not computed over arbitrary
 * amounts of client data). Bounded by what issue() can produce: model and arm
 * names of at most 63 [A-Za-z0-9_-] characters, a 9-digit version and an
 * experiment name of at most 128 UTF-16 units, which JSON may escape as
 * \u0001 or \ud800 (6 bytes each): under 1,000 bytes of JSON, about 1,360
 * characters of id. It was 1024, under which ids issued during an experiment
 * named with control characters or lone surrogates (the router accepts any
 * 1..128 characters) could never be verified.
 */
const MAX_ID_LENGTH = 2048;

/** Random bytes for nonces, drawn from the CSPRNG 4 KiB at a time (one call per request costs more than the rest of signing). */
class NoncePool {
  private pool = Buffer.alloc(0);
  private offset = 0;

  take(n: number): Buffer {
    if (this.offset + n > this.pool.length) {
      this.pool = randomBytes(4096);
      this.offset = 0;
    }
    const out = this.pool.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
}

export class ReceiptSigner {
  private readonly nonces = new NoncePool();

  constructor(
    private readonly secret: Buffer,
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {
    if (secret.length < 16) throw new Error('receipt secret must be at least 16 bytes');
  }

  issue(r: Omit<Receipt, 'issuedAt' | 'nonce'>): string {
    const wire: Wire = {
      m: r.model,
      v: r.version,
      a: r.arm,
      c: r.labelIndex,
      p: Math.round(r.confidence * 1e6) / 1e6,
      t: this.now(),
      n: this.nonces.take(6).toString('base64url'),
      ...(r.experiment !== undefined ? { e: r.experiment } : {}),
      ...(r.abstained ? { x: 1 as const } : {}),
    };
    const payload = Buffer.from(JSON.stringify(wire)).toString('base64url');
    return `${payload}.${this.sign(payload)}`;
  }

  /** The receipt inside `id`, or a ServiceError saying what is wrong with it. */
  verify(id: unknown): Receipt {
    if (typeof id !== 'string' || id.length === 0) throw new ServiceError('INVALID_ARGUMENT', 'predictionId must be a non-empty string');
    if (id.length > MAX_ID_LENGTH) throw new ServiceError('INVALID_ARGUMENT', 'predictionId is too long to be one of ours');
    const dot = id.indexOf('.');
    if (dot <= 0 || dot !== id.lastIndexOf('.'))
      throw new ServiceError('INVALID_ARGUMENT', 'predictionId is malformed: expected <payload>.<signature>');
    const payload = id.slice(0, dot);
    // Compare the signature as text, not as decoded bytes: Node's base64url
    // decoder ignores characters outside the alphabet, accepts '+' and '/' for
    // '-' and '_', and drops the last character's 2 spare bits, so decoding
    // first let many different id strings carry one valid signature (e.g. the
    // last character 'o' replaced by 'p', 'q' or 'r', or a '!' appended). Each
    // such variant passed the feedback dedup (SeenIds is keyed on the id
    // string), so one prediction's feedback could be counted several times.
    const given = Buffer.from(id.slice(dot + 1), 'utf8');
    const expected = Buffer.from(this.sign(payload), 'utf8');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ServiceError('PERMISSION_DENIED', 'predictionId signature does not match: it was altered or issued under another secret');
    }
    let wire: Wire;
    try {
      wire = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Wire;
    } catch {
      throw new ServiceError('INVALID_ARGUMENT', 'predictionId payload is not readable');
    }
    const age = this.now() - wire.t;
    if (!(age <= this.maxAgeMs)) {
      throw new ServiceError(
        'FAILED_PRECONDITION',
        `predictionId expired: feedback is accepted for ${Math.round(this.maxAgeMs / 3_600_000)} h after the prediction`,
      );
    }
    const receipt: Receipt = {
      model: wire.m,
      version: wire.v,
      arm: wire.a,
      labelIndex: wire.c,
      confidence: wire.p,
      issuedAt: wire.t,
      nonce: wire.n,
    };
    if (typeof wire.e === 'string') receipt.experiment = wire.e;
    if (wire.x === 1) receipt.abstained = true;
    return receipt;
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.secret).update(payload).digest('base64url');
  }
}

/** Remembers the ids already counted, forgetting the oldest beyond `capacity`. */
export class SeenIds {
  private readonly ids = new Set<string>();

  constructor(private readonly capacity: number) {}

  /** True the first time an id is offered (and then remembered), false after. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next().value as string;
      this.ids.delete(oldest);
    }
    return true;
  }

  get size(): number {
    return this.ids.size;
  }
}
