/**
 * ClassifyStream's flow control (src/transport/grpc/stream.ts) on a stand-in
 * for the gRPC call whose writes complete only when the test says: the
 * rules are checked at the points where they apply, with no socket and no
 * clock.
 *
 *  - at most `window` requests are worked on at once;
 *  - reading pauses while the client is not taking answers (write()
 *    returned false) and resumes on 'drain';
 *  - answers go out in request order, whatever order the work finishes in.
 *
 * `settle` lets the stream's own callbacks (process.nextTick, promise jobs)
 * run; there is no I/O and no timer here, so after it nothing else is due.
 */
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { streamInOrder } from '../../src/transport/grpc/stream';

/** The server side of a bidi call: requests pushed by the test, answers kept; writes held while `holding`. */
class FakeCall extends Duplex {
  readonly answers: unknown[] = [];
  readonly cancelled = false;
  holding = false;
  private readonly held: (() => void)[] = [];

  constructor(writableHighWaterMark = 16) {
    super({ objectMode: true, writableHighWaterMark });
  }

  override _read(): void {}

  override _write(chunk: unknown, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.answers.push(chunk);
    if (this.holding) this.held.push(() => done());
    else done();
  }

  /** The client takes every answer written so far ('drain' follows once the buffer empties). */
  release(): void {
    this.holding = false;
    for (const done of this.held.splice(0)) done();
  }
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function serve(call: FakeCall, window: number, handle: (req: { i: number }, index: number) => Promise<unknown>) {
  const started: number[] = [];
  let ended = false;
  let failed: unknown;
  call.on('finish', () => (ended = true));
  streamInOrder(
    call as unknown as grpc.ServerDuplexStream<{ i: number }, unknown>,
    window,
    (req, index) => {
      started.push(req.i);
      return handle(req, index);
    },
    (err) => {
      failed = err;
      return { code: 13, details: String(err) };
    },
  );
  return { started, ended: () => ended, failed: () => failed };
}

describe('ClassifyStream flow control (streamInOrder)', () => {
  it('works on at most `window` requests at once, and reads the next as each answer goes out', async () => {
    const call = new FakeCall();
    const work = Array.from({ length: 20 }, () => deferred<unknown>());
    const s = serve(call, 8, (req) => work[req.i].promise.then(() => ({ index: req.i })));
    for (let i = 0; i < 20; i++) call.push({ i });
    await settle();
    assert.deepEqual(s.started, [0, 1, 2, 3, 4, 5, 6, 7], 'eight taken on, the rest left unread');
    work[3].resolve(undefined); // finishes out of order: nothing can go out before request 0
    await settle();
    assert.equal(s.started.length, 8);
    assert.deepEqual(call.answers, []);
    work[0].resolve(undefined);
    await settle();
    assert.deepEqual(call.answers, [{ index: 0 }], 'answer 0 out; answer 3 waits for 1 and 2');
    assert.deepEqual(s.started, [0, 1, 2, 3, 4, 5, 6, 7, 8], 'one answer out, one more request read');
    for (const w of work) w.resolve(undefined);
    call.push(null);
    await settle();
    assert.deepEqual(
      call.answers,
      Array.from({ length: 20 }, (_, i) => ({ index: i })),
      'every answer, in request order',
    );
    assert.equal(s.ended(), true, 'the call ends once the client has ended and every answer is out');
  });

  it('stops reading while the client takes no answers, and goes on after drain', async () => {
    // The write buffer holds two answers: the second one makes write() return false.
    const call = new FakeCall(2);
    call.holding = true;
    const s = serve(call, 8, async (req) => ({ index: req.i }));
    // Requests arrive one at a time, each answered before the next comes, as from a client that sends slowly.
    for (let i = 0; i < 2; i++) {
      call.push({ i });
      await settle();
    }
    assert.deepEqual(s.started, [0, 1]);
    assert.equal(call.writableNeedDrain, true, 'two answers written, none taken: write() said to wait');
    for (let i = 2; i < 20; i++) {
      call.push({ i }); // the client keeps sending
      await settle();
    }
    assert.deepEqual(s.started, [0, 1], 'nothing more read while the client takes no answers, though the window has room');
    assert.equal(call.writableLength, 2, 'and nothing more written');

    call.push(null);
    call.release();
    await settle();
    assert.equal(s.started.length, 20, 'reading resumed on drain');
    assert.deepEqual(
      call.answers.map((a) => (a as { index: number }).index),
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.equal(s.ended(), true);
    assert.equal(s.failed(), undefined);
  });

  it('flushes the answers before a failed request, then ends the call with its error', async () => {
    const call = new FakeCall();
    const errors: unknown[] = [];
    call.on('error', (e) => errors.push(e));
    const s = serve(call, 8, async (req) => {
      if (req.i === 2) throw new Error('draining');
      return { index: req.i };
    });
    for (let i = 0; i < 5; i++) call.push({ i });
    await settle();
    assert.deepEqual(call.answers, [{ index: 0 }, { index: 1 }]);
    assert.match(String(s.failed()), /draining/);
    assert.equal(errors.length, 1, 'the call ends with the mapped status');
  });
});
