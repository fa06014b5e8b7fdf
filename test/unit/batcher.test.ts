/**
 * Dynamic micro-batching, driven by a scripted runtime whose calls finish
 * when the test says, on a clock the test sets: the batcher takes `now` as
 * a parameter, and its queue-delay timer is node:test's mock setTimeout,
 * which fires only when the test advances it. No test waits for real time.
 *
 * `tick` is not a wait for time either: the batcher dispatches in
 * setImmediate (after the event loop's I/O phase, by design), and two
 * turns are exactly the points at which it has dispatched what it will.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import type { ServiceError } from '../../src/core/errors';
import { type BatchCall, type BatcherOptions, DynamicBatcher } from '../../src/models/batcher';

/** A runtime that records each call and holds it until released; output row i = 10 * input row i. */
function scriptedRuntime() {
  const calls: { input: number[]; images: number; release: () => void; fail: (e: Error) => void }[] = [];
  const run = (input: Float32Array, images: number) =>
    new Promise<Float32Array>((resolve, reject) => {
      calls.push({
        input: Array.from(input),
        images,
        release: () => resolve(Float32Array.from(input, (v) => v * 10)),
        fail: reject,
      });
    });
  return { calls, run };
}

const OPTS: BatcherOptions = { maxBatchImages: 8, maxQueueDelayMs: 0, maxQueueImages: 16, maxConcurrentCalls: 1 };
/** Two event-loop turns: the promise callbacks of a finished call, then the dispatch they schedule. */
const tick = async () => {
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
};
const one = (v: number) => Float32Array.of(v);

describe('dynamic batcher', () => {
  // No real timer anywhere: a request that waited for the queue delay would never be dispatched.
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  it('runs a lone request in the same event-loop turn, without waiting for company', async () => {
    const rt = scriptedRuntime();
    const b = new DynamicBatcher(rt.run, { inputSize: 1, outputSize: 1 }, { ...OPTS, maxQueueDelayMs: 500 });
    const p = b.submit(one(3), 1);
    await tick();
    assert.equal(rt.calls.length, 1, "dispatched after this turn's I/O, not after the queue delay");
    rt.calls[0].release();
    assert.deepEqual(Array.from(await p), [30]);
  });

  it('merges requests that arrive in one turn into one call', async () => {
    const rt = scriptedRuntime();
    const b = new DynamicBatcher(rt.run, { inputSize: 1, outputSize: 1 }, OPTS);
    const all = [1, 2, 3].map((v) => b.submit(one(v), 1));
    await tick();
    assert.deepEqual(
      rt.calls.map((c) => c.input),
      [[1, 2, 3]],
    );
    rt.calls[0].release();
    assert.deepEqual(
      (await Promise.all(all)).map((o) => Array.from(o)),
      [[10], [20], [30]],
    );
  });

  it('merges requests that arrive while the model is busy into one call, and gives each its own rows', async () => {
    const rt = scriptedRuntime();
    const seen: BatchCall[] = [];
    const b = new DynamicBatcher(rt.run, { inputSize: 1, outputSize: 1 }, OPTS, (c) => seen.push(c));
    const first = b.submit(one(1), 1);
    await tick();
    const rest = [b.submit(one(2), 1), b.submit(Float32Array.of(3, 4), 2), b.submit(one(5), 1)];
    assert.equal(rt.calls.length, 1);
    assert.equal(b.pending, 4);
    rt.calls[0].release();
    await first;
    await tick();
    assert.equal(rt.calls.length, 2);
    assert.deepEqual(rt.calls[1].input, [2, 3, 4, 5], 'one call with the queued requests in order');
    rt.calls[1].release();
    const outs = await Promise.all(rest);
    assert.deepEqual(
      outs.map((o) => Array.from(o)),
      [[20], [30, 40], [50]],
    );
    assert.deepEqual(
      seen.map((c) => [c.images, c.requests]),
      [
        [1, 1],
        [4, 3],
      ],
    );
  });

  it('caps a call at maxBatchImages and runs the rest next', async () => {
    const rt = scriptedRuntime();
    const b = new DynamicBatcher(rt.run, { inputSize: 1, outputSize: 1 }, { ...OPTS, maxBatchImages: 3 });
    const first = b.submit(one(0), 1);
    await tick();
    const all = [first, ...[1, 2, 3, 4, 5].map((v) => b.submit(one(v), 1))];
    for (let k = 0; k < 3; k++) {
      rt.calls[k].release();
      await tick();
    }
    await Promise.all(all);
    assert.deepEqual(
      rt.calls.map((c) => c.images),
      [1, 3, 2],
    );
  });

  it('refuses requests beyond the queue bound at once with RESOURCE_EXHAUSTED and a retry hint', async () => {
    const rt = scriptedRuntime();
    const b = new DynamicBatcher(rt.run, { inputSize: 1, outputSize: 1 }, { ...OPTS, maxQueueImages: 4 });
    const running = b.submit(one(0), 1);
    await tick();
    const queued = [1, 2, 3, 4].map((v) => b.submit(one(v), 1));
    await assert.rejects(
      b.submit(one(9), 1),
      (e: ServiceError) => e.code === 'RESOURCE_EXHAUSTED' && e.retryAfterSeconds === 1 && /4 images already wait/.test(e.message),
    );
    assert.equal(b.pending, 4, 'the refused request took no place in the queue');
    rt.calls[0].release();
    await running;
    await tick();
    rt.calls[1].release();
    assert.equal((await Promise.all(queued)).length, 4, 'accepted work completes');
  });

  it('fails every request of a failed call, and keeps serving', async () => {
    const rt = scriptedRuntime();
    const b = new DynamicBatcher(rt.run, { inputSize: 1, outputSize: 1 }, OPTS);
    const first = b.submit(one(1), 1);
    await tick();
    const merged = [b.submit(one(2), 1), b.submit(one(3), 1)];
    rt.calls[0].release();
    await first;
    await tick();
    rt.calls[1].fail(new Error('runtime exploded'));
    for (const p of merged) await assert.rejects(p, /runtime exploded/);
    const after = b.submit(one(4), 1);
    await tick();
    rt.calls[2].release();
    assert.deepEqual(Array.from(await after), [40]);
  });

  it('with a queue delay, waits for a short batch to fill while another call runs', async () => {
    const rt = scriptedRuntime();
    let now = 0;
    const b = new DynamicBatcher(
      rt.run,
      { inputSize: 1, outputSize: 1 },
      { ...OPTS, maxQueueDelayMs: 20, maxConcurrentCalls: 2 },
      undefined,
      () => now,
    );
    const a = b.submit(one(1), 1); // idle: runs at once
    await tick();
    const c = b.submit(one(2), 1); // a second slot is free, but a call is in flight: wait to fill
    await tick();
    assert.equal(rt.calls.length, 1, 'the short batch waits');
    // Its timer fires early (10 ms on the batcher's clock): it looks again and keeps waiting.
    now = 10;
    mock.timers.tick(20);
    await tick();
    assert.equal(rt.calls.length, 1, 'not before the oldest request has waited maxQueueDelayMs');
    const d = b.submit(one(3), 1); // joins the waiting batch
    now = 20;
    mock.timers.tick(10);
    await tick();
    assert.equal(rt.calls.length, 2, 'dispatched once the oldest waited maxQueueDelayMs');
    assert.deepEqual(rt.calls[1].input, [2, 3], 'with what arrived meanwhile');
    rt.calls[0].release();
    rt.calls[1].release();
    assert.deepEqual(
      (await Promise.all([a, c, d])).map((o) => Array.from(o)),
      [[10], [20], [30]],
    );
  });
});
