/**
 * The out-of-distribution score in Node against the training code's own
 * numbers (training/results/ood-vectors.json: pixels, PyTorch logits, the
 * pixel statistics, components and score per image, for in-distribution
 * and out-of-distribution sets), the abstain rule, and the manifest's
 * validation of the ood block.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { abstainReason, policyFor } from '../../src/core/abstain';
import { validateManifest } from '../../src/models/manifest';
import { type OodBlock, OodScorer, parseScore, pixelStatistics } from '../../src/models/ood';
import { BASELINE, ROOT } from '../helpers';

const RESULTS = path.join(ROOT, 'training', 'results');
const read = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

interface Vector {
  pixels: string;
  pixelFeatures: number[];
  models: Record<string, { logits: number[]; score: number; flagged: boolean }>;
}

describe('OOD score: parity with the training code', () => {
  const vectors = read(path.join(RESULTS, 'ood-vectors.json')) as { score: string; sets: Record<string, Vector[]> };
  for (const model of ['baseline', 'dendritic']) {
    it(`${model}: the pixel statistics, score and flag of every vector match PyTorch's`, () => {
      const block = read(path.join(RESULTS, `ood-manifest-${model}.json`)) as OodBlock;
      assert.equal(block.score, vectors.score);
      const scorer = new OodScorer(block, { classes: 10, pixels: 784 });
      let checked = 0;
      let flagged = 0;
      for (const [set, items] of Object.entries(vectors.sets)) {
        for (const v of items) {
          const pixels = Buffer.from(v.pixels, 'base64');
          const stats = pixelStatistics(pixels);
          v.pixelFeatures.forEach((want, i) =>
            assert.ok(Math.abs(stats[i] - want) < 1e-9, `${set} statistic ${i}: ${stats[i]} vs ${want}`),
          );
          const want = v.models[model];
          const got = scorer.verdict(pixels, Float32Array.from(want.logits));
          assert.ok(Math.abs(got.score - want.score) <= 1e-6 * Math.max(1, Math.abs(want.score)), `${set}: ${got.score} vs ${want.score}`);
          assert.equal(got.flagged, want.flagged, `${set}: flag`);
          checked++;
          if (got.flagged) flagged++;
        }
      }
      assert.ok(checked >= 100, `${checked} vectors`);
      assert.ok(flagged > 0 && flagged < checked, 'both flagged and unflagged inputs are among the vectors');
    });
  }
});

describe('OOD score: the rules', () => {
  it('parses one component or a standardized max/sum of several, and refuses the rest', () => {
    assert.deepEqual(parseScore('energy'), { op: 'one', parts: ['energy'] });
    assert.deepEqual(parseScore('sumz(msp,pixClass)'), { op: 'sum', parts: ['msp', 'pixClass'] });
    assert.deepEqual(parseScore('maxz(energy,logitMaha,pixPred)'), { op: 'max', parts: ['energy', 'logitMaha', 'pixPred'] });
    assert.throws(() => parseScore('featMaha'), /unknown OOD score component "featMaha"/);
    assert.throws(() => parseScore('sumz(msp,nope)'), /"nope"/);
  });

  it('flags a score it cannot compute (NaN) rather than letting it through', () => {
    const scorer = new OodScorer(
      { score: 'energy', threshold: 0, falseFlagRate: 0.05, params: { temperature: 1 } },
      { classes: 10, pixels: 784 },
    );
    const v = scorer.verdict(new Uint8Array(784), [NaN, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(v.flagged, true);
    assert.ok(Number.isFinite(v.score), 'a JSON-safe number');
    const calm = scorer.verdict(new Uint8Array(784), [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(calm.flagged, false);
    assert.ok(Math.abs(calm.score - -(10 + Math.log(1 + 9 * Math.exp(-10)))) < 1e-12, 'energy = -logsumexp(z)');
  });

  it('the manifest refuses an ood block it cannot score with, naming the field', () => {
    const manifest = read(path.join(BASELINE, 'manifest.json'));
    const block = read(path.join(RESULTS, 'ood-manifest-baseline.json'));
    assert.equal(validateManifest({ ...manifest, ood: block }).ood?.score, block.score);
    assert.throws(() => validateManifest({ ...manifest, ood: { ...block, threshold: 'high' } }), /ood\.threshold/);
    assert.throws(
      () => validateManifest({ ...manifest, ood: { ...block, score: 'sumz(msp,featMaha)' } }),
      /ood: unknown OOD score component/,
    );
    const noGaussian = { ...block, params: { ...block.params, pixelGaussian: undefined } };
    assert.throws(() => validateManifest({ ...manifest, ood: noGaussian }), /pixelGaussian/);
    const badNumber = structuredClone(block);
    badNumber.params.pixelGaussian.precision[0][0] = 'x';
    assert.throws(() => validateManifest({ ...manifest, ood: badNumber }), /finite numbers/);
    assert.throws(
      () => validateManifest({ ...manifest, output: { ...manifest.output, kind: 'probabilities' }, ood: block }),
      /ood needs output\.kind "logits"/,
    );
    // Parameters that would fail or flag every request at serving time are refused at load.
    const fewMeans = structuredClone(block);
    fewMeans.params.pixelGaussian.means = fewMeans.params.pixelGaussian.means.slice(0, 3);
    assert.throws(() => validateManifest({ ...manifest, ood: fewMeans }), /pixelGaussian must have 10 class mean/);
    const noMean = structuredClone(block);
    delete noMean.params.standardize.msp.mean;
    assert.throws(() => validateManifest({ ...manifest, ood: noMean }), /standardize\.msp must give a finite mean/);
    const bigger = { ...manifest, input: { ...manifest.input, shape: [-1, 1, 32, 32] }, ood: block };
    assert.throws(() => validateManifest(bigger), /defined on 28x28 inputs; this model takes 1024 pixels/);
  });
});

describe('abstain rule', () => {
  const settings = { policy: 'ood' as const, minConfidence: 0.6 };
  const flagged = { score: 9, threshold: 3, flagged: true };
  const calm = { score: 1, threshold: 3, flagged: false };

  it('a request chooses for itself; otherwise the server policy applies', () => {
    assert.equal(policyFor(undefined, settings), 'ood');
    assert.equal(policyFor(true, settings), 'ood+confidence');
    assert.equal(policyFor(false, settings), 'off');
  });

  it('abstains on out-of-distribution first, on low confidence only under ood+confidence, never when off', () => {
    assert.equal(abstainReason('off', flagged, 0.1, settings), undefined);
    assert.equal(abstainReason('ood', flagged, 0.99, settings), 'out-of-distribution');
    assert.equal(abstainReason('ood', calm, 0.1, settings), undefined);
    assert.equal(abstainReason('ood+confidence', flagged, 0.1, settings), 'out-of-distribution');
    assert.equal(abstainReason('ood+confidence', calm, 0.59, settings), 'low-confidence');
    assert.equal(abstainReason('ood+confidence', calm, 0.6, settings), undefined);
    // A model without a score abstains on confidence alone.
    assert.equal(abstainReason('ood+confidence', undefined, 0.5, settings), 'low-confidence');
    assert.equal(abstainReason('ood', undefined, 0.1, settings), undefined);
  });
});
