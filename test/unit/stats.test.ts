/**
 * The statistics against reference values computed elsewhere; each expected
 * number says where it comes from.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  chiSquareSurvival,
  chiSquareTest,
  jensenShannonDistance,
  kolmogorovSurvival,
  ksFromQuantileBins,
  normalCdf,
  normalQuantile,
  psi,
  samplesPerArm,
  sequentialDifference,
  wilson,
} from '../../src/monitoring/stats';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

describe('distributions', () => {
  it('normal CDF and quantile match the standard normal table', () => {
    close(normalCdf(0), 0.5, 1e-7, 'Phi(0)');
    close(normalCdf(1.959964), 0.975, 1e-6, 'Phi(1.96)'); // z_0.975 = 1.959964 (any normal table)
    close(normalCdf(-2.575829), 0.005, 1e-6, 'Phi(-2.5758)');
    close(normalQuantile(0.975), 1.959964, 1e-6, 'z_0.975');
    close(normalQuantile(0.8), 0.841621, 1e-6, 'z_0.8');
    close(normalQuantile(0.001), -3.090232, 1e-6, 'z_0.001');
  });

  it('chi-square tail probabilities match the critical-value table', () => {
    // NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.6.7.4 (upper critical values of chi-square)
    close(chiSquareSurvival(3.841, 1), 0.05, 2e-4, 'df 1');
    close(chiSquareSurvival(5.991, 2), 0.05, 2e-4, 'df 2');
    close(chiSquareSurvival(16.919, 9), 0.05, 2e-4, 'df 9');
    close(chiSquareSurvival(21.666, 9), 0.01, 1e-4, 'df 9, 1%');
    close(chiSquareSurvival(124.342, 100), 0.05, 2e-4, 'df 100');
    // df 1 equals the two-sided normal tail: P(chi2_1 > 4) = 2 (1 - Phi(2)) = 0.0455003
    close(chiSquareSurvival(4, 1), 0.0455003, 1e-6, 'df 1 at 4');
  });

  it('Kolmogorov tail probabilities match the asymptotic critical values', () => {
    // Smirnov (1948) table: P(K > 1.3581) = 0.05, P(K > 1.6276) = 0.01, P(K > 1.2238) = 0.10
    close(kolmogorovSurvival(1.3581), 0.05, 1e-4, 'K 5%');
    close(kolmogorovSurvival(1.6276), 0.01, 1e-4, 'K 1%');
    close(kolmogorovSurvival(1.2238), 0.1, 1e-4, 'K 10%');
  });
});

describe('A/B statistics', () => {
  it('Wilson interval matches Newcombe (1998), Statistics in Medicine 17:857, example 81/263', () => {
    const w = wilson(81, 263);
    close(w.low, 0.2553, 1e-4, 'low');
    close(w.high, 0.3662, 1e-4, 'high');
    // and the 0/n edge (Newcombe's 0/20 example: 0 to 0.1611)
    close(wilson(0, 20).high, 0.1611, 1e-4, '0/20 high');
  });

  it('sample-ratio mismatch: 5,100 vs 4,900 on 50/50 is chi-square 4 on 1 df, p = 0.0455', () => {
    const r = chiSquareTest([5100, 4900], [0.5, 0.5]);
    close(r.statistic, 4, 1e-12, 'statistic');
    assert.equal(r.df, 1);
    close(r.pValue, 0.0455003, 1e-6, 'p');
    assert.ok(chiSquareTest([5000, 5000], [1, 1]).pValue > 0.99);
  });

  it('sample size per arm: 50% vs 60%, alpha 0.05, power 0.8 needs 385 (Fleiss, uncorrected)', () => {
    assert.equal(samplesPerArm(0.5, 0.6), 385);
    assert.equal(samplesPerArm(0.9, 0.9), Infinity);
  });

  it('the sequential interval is wider than the fixed one and agrees with its p-value', () => {
    const control = { k: 930, n: 1000 };
    const candidate = { k: 960, n: 1000 };
    const s = sequentialDifference(control, candidate);
    close(s.difference, 0.03, 1e-12, 'difference');
    const fixedHalf = 1.959964 * Math.sqrt((0.93 * 0.07) / 1000 + (0.96 * 0.04) / 1000);
    assert.ok(s.high - s.difference > fixedHalf, 'an always-valid interval pays for peeking');
    assert.equal(s.low > 0, s.pValue < 0.05);
    const none = sequentialDifference({ k: 500, n: 1000 }, { k: 500, n: 1000 });
    assert.equal(none.pValue, 1);
    assert.ok(none.low < 0 && none.high > 0);
  });

  it('keeps the false-positive rate under alpha when an A/A test is checked after every 100 labels', () => {
    let seed = 12345;
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const experiments = 300;
    let sequentialFalse = 0;
    let naiveFalse = 0;
    for (let e = 0; e < experiments; e++) {
      const a = { k: 0, n: 0 };
      const b = { k: 0, n: 0 };
      let seqHit = false;
      let naiveHit = false;
      for (let step = 1; step <= 40; step++) {
        for (let i = 0; i < 50; i++) {
          a.n++;
          b.n++;
          if (rand() < 0.9) a.k++;
          if (rand() < 0.9) b.k++;
        }
        if (sequentialDifference(a, b).pValue < 0.05) seqHit = true;
        const pa = a.k / a.n;
        const pb = b.k / b.n;
        const z = (pb - pa) / Math.sqrt((pa * (1 - pa)) / a.n + (pb * (1 - pb)) / b.n);
        if (2 * (1 - normalCdf(Math.abs(z))) < 0.05) naiveHit = true;
      }
      if (seqHit) sequentialFalse++;
      if (naiveHit) naiveFalse++;
    }
    assert.ok(sequentialFalse / experiments <= 0.05, `sequential false positives ${sequentialFalse}/${experiments}`);
    assert.ok(naiveFalse / experiments > 0.1, `peeking at a fixed test should inflate errors (${naiveFalse}/${experiments})`);
  });
});

describe('drift measures', () => {
  it('PSI and Jensen-Shannon distance on hand-computed cases', () => {
    // (0.3-0.5) ln(0.3/0.5) + (0.7-0.5) ln(0.7/0.5) = 0.102165 + 0.067294
    close(psi([30, 70], [50, 50]), 0.169459, 1e-6, 'psi');
    assert.equal(psi([10, 20, 30], [1, 2, 3]), 0);
    close(jensenShannonDistance([1, 0], [0, 1]), 1, 1e-12, 'disjoint');
    assert.equal(jensenShannonDistance([2, 2], [5, 5]), 0);
    // p = (0.5, 0.5), q = (1, 0): JS = 0.5 * [0.5 log2(0.5/0.75) + 0.5 log2(0.5/0.25)] + 0.5 * log2(1/0.75) = 0.311278
    close(jensenShannonDistance([1, 1], [1, 0]), Math.sqrt(0.311278), 1e-6, 'half overlap');
  });

  it('KS on quantile bins: D is the largest CDF gap at the reference quantiles', () => {
    // Reference quantiles at 0, 0.5, 1 (3 edges); live: 80 of 100 below the median.
    const r = ksFromQuantileBins([0, 80, 100], 100);
    close(r.statistic, 0.3, 1e-12, 'D');
    assert.ok(r.pValue < 1e-6);
    const same = ksFromQuantileBins([0, 51, 100], 100);
    assert.ok(same.pValue > 0.9);
  });
});
