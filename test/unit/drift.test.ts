/** Drift against the shipped baseline's reference distributions, and the minute windows behind it. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { binIndex, DriftMonitor, type DriftReference } from '../../src/monitoring/drift';
import { referenceCdf } from '../../src/monitoring/metrics';
import { MinuteWindows } from '../../src/monitoring/windows';
import { BASELINE } from '../helpers';

const ref = JSON.parse(readFileSync(path.join(BASELINE, 'manifest.json'), 'utf8')).reference;
const reference: DriftReference = {
  binEdges: ref.confidence.binEdges,
  counts: ref.confidence.counts,
  quantiles: ref.confidence.quantiles,
  classCounts: ref.predictedClass.counts,
};

function rng(seed: number) {
  return () => (seed = (seed * 16807) % 2147483647) / 2147483647;
}

/** A draw from the reference: inverse CDF through the quantile grid, class by the reference mix. */
function drawFromReference(rand: () => number): [number, number] {
  const q = reference.quantiles;
  const u = rand() * (q.length - 1);
  const k = Math.min(Math.floor(u), q.length - 2);
  const conf = q[k] + (u - k) * (q[k + 1] - q[k]);
  const total = reference.classCounts.reduce((a, b) => a + b, 0);
  let r = rand() * total;
  let cls = 0;
  while (r >= reference.classCounts[cls]) r -= reference.classCounts[cls++];
  return [conf, cls];
}

describe('DriftMonitor', () => {
  it('sees no drift in samples drawn from the reference', () => {
    const m = new DriftMonitor(reference);
    const rand = rng(7);
    let sum = 0;
    for (let i = 0; i < 3000; i++) {
      const [c, k] = drawFromReference(rand);
      sum += c;
      m.record(c, k);
    }
    const r = m.report(60);
    assert.equal(r.samples, 3000);
    assert.equal(r.drift, false, r.reasons.join('; '));
    assert.ok(r.psi! < 0.05, `psi ${r.psi}`);
    assert.ok(r.ksPValue! > 0.01 && r.classChiSquarePValue! > 0.01);
    assert.ok(Math.abs(r.estimatedAccuracy! - sum / 3000) < 1e-9);
  });

  it('flags shifted confidences and a changed class mix, with the reasons', () => {
    const rand = rng(11);
    const lower = new DriftMonitor(reference);
    for (let i = 0; i < 2000; i++) {
      const [c, k] = drawFromReference(rand);
      lower.record(c * 0.85, k); // the model is less sure of everything: new kinds of photos
    }
    const a = lower.report(60);
    assert.equal(a.drift, true);
    assert.ok(a.psi! > 0.2 && a.ksPValue! < 1e-6, JSON.stringify(a));
    assert.ok(a.reasons.some((s) => s.startsWith('confidence PSI')));
    assert.ok(!a.reasons.some((s) => s.startsWith('class mix')));

    const mix = new DriftMonitor(reference);
    for (let i = 0; i < 2000; i++) {
      const [c] = drawFromReference(rand);
      mix.record(c, i % 3 === 0 ? 8 : i % 10); // a sale on bags
    }
    const b = mix.report(60);
    assert.equal(b.drift, true);
    assert.ok(b.classChiSquarePValue! < 1e-6);
    assert.deepEqual(b.reasons.filter((s) => s.startsWith('class mix')).length, 1);
  });

  it('does not judge a small window', () => {
    const m = new DriftMonitor(reference, { minSamples: 500, psi: 0.2, pValue: 0.01 });
    for (let i = 0; i < 100; i++) m.record(0.3, 0); // wildly off, but only 100 predictions
    const r = m.report(60);
    assert.equal(r.drift, false);
    assert.ok(r.psi! > 1);
    assert.match(r.reasons[0], /100 predictions in this window; drift is judged from 500/);
    assert.deepEqual(new DriftMonitor(reference).report(60).reasons, ['no predictions in this window']);
  });

  it('compares abstained predictions with the reference too, but estimates accuracy from the answered ones only', () => {
    const rand = rng(11);
    const both = new DriftMonitor(reference);
    const answeredOnly = new DriftMonitor(reference);
    let answeredConf = 0;
    let answered = 0;
    for (let i = 0; i < 3000; i++) {
      const [conf, cls] = drawFromReference(rand);
      // The low-confidence ones abstain, as under ABSTAIN=ood+confidence.
      const abstain = conf < 0.6;
      both.record(conf, cls, !abstain);
      if (!abstain) {
        answeredOnly.record(conf, cls);
        answeredConf += conf;
        answered++;
      }
    }
    const r = both.report(60);
    assert.equal(r.samples, 3000);
    assert.equal(r.abstained, 3000 - answered);
    assert.ok(r.abstained > 0);
    assert.ok(Math.abs(r.estimatedAccuracy! - answeredConf / answered) < 1e-12);
    assert.equal(r.drift, false, `the whole population matches the reference: ${r.reasons.join('; ')}`);
    // Leaving the abstentions out would cut the low-confidence tail off and read as drift.
    assert.equal(answeredOnly.report(60).drift, true);
  });

  it('keeps 1 h and 24 h windows apart', () => {
    let now = 1_000_000 * 60_000;
    const m = new DriftMonitor(reference, undefined, () => now);
    for (let i = 0; i < 10; i++) m.record(0.99, 1);
    now += 2 * 3600_000; // two hours later
    for (let i = 0; i < 5; i++) m.record(0.5, 2);
    assert.equal(m.report(60).samples, 5);
    assert.equal(m.report(1440).samples, 15);
    now += 23 * 3600_000;
    assert.equal(m.report(1440).samples, 5);
  });
});

describe('MinuteWindows and binIndex', () => {
  it('sums the last minutes and reuses slots after a full turn', () => {
    let now = 0;
    const w = new MinuteWindows(2, 3, () => now);
    w.add(0, 5);
    now = 60_000;
    w.addAll([1, 2]);
    assert.deepEqual(Array.from(w.sum(1)), [1, 2]);
    assert.deepEqual(Array.from(w.sum(2)), [6, 2]);
    now = 3 * 60_000; // minute 3 reuses minute 0's slot
    w.add(1, 7);
    assert.deepEqual(Array.from(w.sum(3)), [1, 9]);
    assert.deepEqual(Array.from(w.sum(10)), [1, 9], 'never more than the ring holds');
  });

  it('finds the bin (edges[i-1], edges[i]]', () => {
    const edges = [0.2, 0.5, 0.9];
    assert.deepEqual(
      [0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95].map((x) => binIndex(edges, x)),
      [0, 0, 1, 1, 2, 2, 3],
    );
  });
});

describe('referenceCdf', () => {
  it('reads the reference CDF off the quantile grid', () => {
    const q = [0.2, 0.5, 0.6, 0.9, 1.0]; // quantiles at 0, 0.25, 0.5, 0.75, 1
    assert.equal(referenceCdf(q, 0.1), 0);
    assert.equal(referenceCdf(q, 0.5), 0.25);
    assert.ok(Math.abs(referenceCdf(q, 0.55) - 0.375) < 1e-12);
    assert.equal(referenceCdf(q, 0.9), 0.75);
    assert.equal(referenceCdf(q, 1), 1);
  });
});
