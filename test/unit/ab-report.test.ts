/** The A/B report's verdicts, guards and per-arm figures. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { abReport, type ArmCounts } from '../../src/monitoring/ab-report';
import { wilson } from '../../src/monitoring/stats';

const arms = (control: [number, number, number], candidate: [number, number, number]): ArmCounts[] => [
  { name: 'baseline', model: 'baseline', weight: 0.5, assigned: control[0], abstained: 0, labelled: control[1], correct: control[2] },
  {
    name: 'dendritic',
    model: 'dendritic',
    weight: 0.5,
    assigned: candidate[0],
    abstained: 0,
    labelled: candidate[1],
    correct: candidate[2],
  },
];

describe('abReport', () => {
  it('calls a clearly better candidate better, with its interval', () => {
    const r = abReport('rollout', 'baseline', arms([5000, 2000, 1800], [5000, 2000, 1900]));
    const c = r.comparisons[0];
    assert.equal(c.verdict, 'candidate-better');
    assert.ok(Math.abs(c.difference! - 0.05) < 1e-12);
    assert.ok(c.low! > 0 && c.high! > c.difference!);
    assert.match(c.reason, /dendritic is more accurate by 5\.00 points/);
    assert.equal(r.sampleRatio.mismatch, false);
    const w = wilson(1800, 2000);
    assert.deepEqual([r.arms[0].accuracy, r.arms[0].low, r.arms[0].high], [0.9, w.low, w.high]);
  });

  it('calls a clearly worse candidate worse', () => {
    const r = abReport('rollout', 'baseline', arms([5000, 2000, 1900], [5000, 2000, 1800]));
    assert.equal(r.comparisons[0].verdict, 'candidate-worse');
    assert.match(r.comparisons[0].reason, /less accurate by 5\.00 points/);
  });

  it('waits when the difference is small, saying how many labels would settle it', () => {
    const r = abReport('rollout', 'baseline', arms([3000, 1000, 930], [3000, 1000, 935]));
    const c = r.comparisons[0];
    assert.equal(c.verdict, 'not-decided');
    assert.ok(c.labelsNeededPerArm! > 10_000, String(c.labelsNeededPerArm));
    assert.match(c.reason, /no significant difference yet/);
  });

  it('gives no verdict below the minimum labels, however large the gap', () => {
    const r = abReport('rollout', 'baseline', arms([100, 40, 20], [100, 40, 40]));
    assert.equal(r.comparisons[0].verdict, 'not-decided');
    assert.match(r.comparisons[0].reason, /40 labels in the smaller arm; a verdict needs 100/);
  });

  it('refuses a verdict when the split does not follow the weights', () => {
    const r = abReport('rollout', 'baseline', arms([6000, 2000, 1800], [4000, 2000, 1900]));
    assert.equal(r.sampleRatio.mismatch, true);
    assert.ok(r.sampleRatio.pValue < 1e-50);
    assert.equal(r.comparisons[0].verdict, 'not-decided');
    assert.match(r.comparisons[0].reason, /sample ratio mismatch/);
  });

  it('reports arms without labels', () => {
    const r = abReport('rollout', 'baseline', arms([10, 0, 0], [12, 0, 0]));
    assert.equal(r.arms[0].accuracy, null);
    assert.equal(r.comparisons[0].difference, null);
    assert.equal(r.comparisons[0].labelsNeededPerArm, null);
  });
});
