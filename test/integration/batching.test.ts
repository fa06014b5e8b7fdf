/**
 * Micro-batching with the real model: concurrent requests reach
 * onnxruntime in fewer calls than requests, each answer is its own image's,
 * and the batch-size histogram accounts for every image. Requests are
 * issued through the service's DataPlane in one event-loop turn (as a busy
 * server sees them), so the merging does not depend on timing; over HTTP the
 * same happens whenever the model is the bottleneck (README, Performance).
 *
 * The images are the committed Fashion-MNIST fixtures (test/fixtures), and
 * each answer is checked against PyTorch's top-1 for that very image
 * (the served baseline version's parity/reference.json), so nothing needs the dataset
 * installed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { argmax, BASELINE, BASELINE_VERSION, fixtureBytes, fixtureImages, pytorchReference, startService } from '../helpers';

const N = 96;
const MAX_BATCH = 32;

describe('micro-batching', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  const fixtures = fixtureImages().slice(0, N);
  const reference = pytorchReference(BASELINE);
  let pixels: Uint8Array[];

  before(async () => {
    assert.equal(fixtures.length, N, `test/fixtures has at least ${N} images`);
    // The fixtures are the test set's own pixels, losslessly as PNG.
    pixels = await Promise.all(fixtures.map(async (f) => new Uint8Array(await sharp(fixtureBytes(f.file)).greyscale().raw().toBuffer())));
    service = await startService({ BATCH_MAX_IMAGES: String(MAX_BATCH) });
  });
  after(async () => {
    await service?.stop();
  });

  const histogram = async () => {
    const text = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
    const read = (name: string) =>
      Number(new RegExp(`^${name}\\{model="baseline",version="${BASELINE_VERSION}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    return { calls: read('classifier_batch_size_count'), images: read('classifier_batch_size_sum') };
  };

  it('merges concurrent requests into full batches and answers each with its own image', async () => {
    const before = await histogram();
    const answers = await Promise.all(pixels.map((p) => service.dataplane.classify({ kind: 'pixels', pixels: p }, { model: 'baseline' })));
    const wrong = answers
      .map((a, i) => ({ file: fixtures[i].file, got: a.labelIndex, pytorch: argmax(reference.get(fixtures[i].testIndex)!) }))
      .filter((x) => x.got !== x.pytorch);
    assert.deepEqual(wrong, [], "merged batches keep each request's own rows: every answer is PyTorch's top-1 for its image");
    const afterwards = await histogram();
    assert.equal(afterwards.images - before.images, N, 'every image went through one runtime call');
    assert.equal(afterwards.calls - before.calls, N / MAX_BATCH, `three calls of ${MAX_BATCH} (BATCH_MAX_IMAGES)`);
  });

  it('answers a lone request alone', async () => {
    const before = await histogram();
    const answer = await service.dataplane.classify({ kind: 'pixels', pixels: pixels[0] }, { model: 'baseline' });
    assert.equal(answer.labelIndex, argmax(reference.get(fixtures[0].testIndex)!));
    const afterwards = await histogram();
    assert.deepEqual([afterwards.calls - before.calls, afterwards.images - before.images], [1, 1]);
  });
});
