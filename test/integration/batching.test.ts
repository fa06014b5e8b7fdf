/**
 * Micro-batching with the real model: concurrent requests reach
 * onnxruntime in fewer calls than requests, each answer is its own image's,
 * and the batch-size histogram accounts for every image. Requests are
 * issued through the service's DataPlane in one event-loop turn (as a busy
 * server sees them), so the merging does not depend on timing; over HTTP the
 * same happens whenever the model is the bottleneck (README, Performance).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readTestSet } from '../../src/tools/fashion-mnist';
import { startService } from '../helpers';

describe('micro-batching', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  before(async () => {
    service = await startService({ BATCH_MAX_IMAGES: '32' });
  });
  after(async () => {
    await service.stop();
  });

  const histogram = async () => {
    const text = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
    const read = (name: string) => Number(new RegExp(`^${name}\\{model="baseline",version="1"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    return { calls: read('classifier_batch_size_count'), images: read('classifier_batch_size_sum') };
  };

  it('merges concurrent requests into full batches and answers each with its own image', async () => {
    const { images, labels } = readTestSet();
    const n = 96;
    const before = await histogram();
    const answers = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        service.dataplane.classify(
          { kind: 'pixels', pixels: images.pixels.subarray(i * 784, (i + 1) * 784) },
          { model: 'baseline', transport: 'inprocess' },
        ),
      ),
    );
    const right = answers.filter((a, i) => a.labelIndex === labels[i]).length;
    assert.ok(right >= 0.85 * n, `${right}/${n} right: merged batches keep each request's own rows`);
    const afterwards = await histogram();
    assert.equal(afterwards.images - before.images, n, 'every image went through one runtime call');
    assert.equal(afterwards.calls - before.calls, n / 32, 'three calls of 32 (BATCH_MAX_IMAGES)');
  });

  it('answers a lone request alone', async () => {
    const { images } = readTestSet();
    const before = await histogram();
    await service.dataplane.classify(
      { kind: 'pixels', pixels: images.pixels.subarray(0, 784) },
      { model: 'baseline', transport: 'inprocess' },
    );
    const afterwards = await histogram();
    assert.deepEqual([afterwards.calls - before.calls, afterwards.images - before.images], [1, 1]);
  });
});
