/**
 * The ONNX session on an inference thread (INFERENCE_THREAD=worker): the
 * same numbers as on the calling thread, an event loop that keeps turning
 * while a batch computes, clear errors, and a clean unload.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadManifest, type Manifest } from '../../src/models/manifest';
import { type InferenceThread, OnnxRuntimeFactory } from '../../src/models/onnx-runtime';
import type { InferenceRuntime } from '../../src/models/runtime';
import { BASELINE } from '../helpers';

const PER_IMAGE = 784;

/** A deterministic batch of normalized-looking inputs. */
function batchOf(n: number): Float32Array {
  const input = new Float32Array(n * PER_IMAGE);
  for (let i = 0; i < input.length; i++) input[i] = ((i * 7919) % 255) / 255 - 0.3;
  return input;
}

/** Event-loop turns (setImmediate callbacks) that run before `work` settles. */
async function turnsDuring(work: Promise<unknown>): Promise<number> {
  let settled = false;
  let turns = 0;
  const done = work.finally(() => (settled = true));
  await new Promise<void>((resolve) => {
    const turn = () => {
      if (settled) return resolve();
      turns++;
      setImmediate(turn);
    };
    setImmediate(turn);
  });
  await done;
  return turns;
}

describe('ONNX inference thread', () => {
  let manifest: Manifest;
  const runtimes: Partial<Record<InferenceThread, InferenceRuntime>> = {};
  before(async () => {
    manifest = await loadManifest(BASELINE);
    for (const thread of ['caller', 'worker'] as const) {
      runtimes[thread] = await new OnnxRuntimeFactory({ intraOpThreads: 1, thread }).load(BASELINE, manifest);
    }
  });
  after(async () => {
    for (const rt of Object.values(runtimes)) await rt.dispose();
  });

  it('gives bit-identical outputs to the session on the calling thread', async () => {
    for (const n of [1, 7, 64]) {
      const input = batchOf(n);
      const onCaller = await runtimes.caller!.run(input, n);
      const onWorker = await runtimes.worker!.run(input, n);
      assert.deepEqual(Array.from(onWorker), Array.from(onCaller), `batch ${n}`);
    }
  });

  it('leaves the caller its input (the batch is copied, not taken)', async () => {
    const input = batchOf(4);
    const before = Array.from(input);
    await runtimes.worker!.run(input, 4);
    assert.equal(input.length, 4 * PER_IMAGE);
    assert.deepEqual(Array.from(input), before);
  });

  it('answers concurrent calls each with its own rows', async () => {
    const inputs = [1, 2, 3, 4, 5].map((n) => batchOf(n).map((v) => v * (n % 2 === 0 ? -1 : 1)));
    const expected = await Promise.all(inputs.map((x, i) => runtimes.caller!.run(x, i + 1)));
    const got = await Promise.all(inputs.map((x, i) => runtimes.worker!.run(x, i + 1)));
    got.forEach((out, i) => assert.deepEqual(Array.from(out), Array.from(expected[i]), `call ${i}`));
  });

  it('keeps the event loop turning while a batch computes; the calling thread does not', async () => {
    // 2,048 images take hundreds of milliseconds on one core: the worker's
    // answer cannot arrive before the first turn. On the calling thread the
    // call computes before its promise settles, so no turn comes between.
    const input = batchOf(2048);
    const onWorker = await turnsDuring(runtimes.worker!.run(input, 2048));
    const onCaller = await turnsDuring(runtimes.caller!.run(input, 2048));
    assert.ok(onWorker > 0, `event loop turns during a worker call: ${onWorker}`);
    assert.equal(onCaller, 0);
  });

  it('names the backend and the thread', () => {
    assert.match(runtimes.worker!.backend, /onnxruntime-node .*inference thread per model, float32/);
    assert.doesNotMatch(runtimes.caller!.backend, /inference thread/);
  });
});

describe('ONNX inference thread: failures', () => {
  it('refuses a model file the runtime cannot read, with the runtime reason', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pc-thread-'));
    await copyFile(path.join(BASELINE, 'manifest.json'), path.join(dir, 'manifest.json'));
    await writeFile(path.join(dir, 'model.onnx'), 'not an onnx model');
    const manifest = await loadManifest(BASELINE);
    await assert.rejects(new OnnxRuntimeFactory({ intraOpThreads: 1, thread: 'worker' }).load(dir, manifest), /protobuf|parse|load/i);
  });

  it('refuses a session whose input name is not the manifest one', async () => {
    const manifest = await loadManifest(BASELINE);
    const renamed: Manifest = { ...manifest, input: { ...manifest.input, name: 'pixels' } };
    await assert.rejects(
      new OnnxRuntimeFactory({ intraOpThreads: 1, thread: 'worker' }).load(BASELINE, renamed),
      /model\.onnx has inputs \[input\].*manifest names pixels -> logits/,
    );
  });

  it('rejects a call the runtime refuses with its reason, and answers the next one', async () => {
    const manifest = await loadManifest(BASELINE);
    const rt = await new OnnxRuntimeFactory({ intraOpThreads: 1, thread: 'worker' }).load(BASELINE, manifest);
    try {
      // One image of pixels said to be two images.
      await assert.rejects(rt.run(batchOf(1), 2), /baseline\/1: .*size/);
      assert.equal((await rt.run(batchOf(2), 2)).length, 20);
    } finally {
      await rt.dispose();
    }
  });

  it('finishes calls already posted before it unloads, then refuses new ones', async () => {
    const manifest = await loadManifest(BASELINE);
    const rt = await new OnnxRuntimeFactory({ intraOpThreads: 1, thread: 'worker' }).load(BASELINE, manifest);
    const pending = [rt.run(batchOf(16), 16), rt.run(batchOf(3), 3)];
    const disposed = rt.dispose();
    const [a, b] = await Promise.all(pending);
    assert.equal(a.length, 16 * 10);
    assert.equal(b.length, 3 * 10);
    await disposed;
    await assert.rejects(rt.run(batchOf(1), 1), /baseline\/1 was unloaded/);
  });
});
