/**
 * The statistics behind the A/B report and drift detection, with no
 * dependencies: normal and chi-square tail probabilities, Wilson intervals,
 * an always-valid (sequential) interval and p-value for a difference of
 * proportions, sample-ratio mismatch, sample size, and the drift measures
 * (PSI, Jensen-Shannon distance, Kolmogorov-Smirnov, chi-square).
 */

/** Standard normal CDF, from erfc below (absolute error under 1e-7). */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

/** Complementary error function (Numerical Recipes erfcc; fractional error < 1.2e-7 everywhere). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** Inverse standard normal CDF (Acklam's algorithm, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError('p must be in (0, 1)');
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lo) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
  );
}

function logGamma(x: number): number {
  // Lanczos approximation (g = 7, n = 9).
  const g = [
    0.9999999999998099, 676.5203681218851, -1259.1392167224028, 771.3234287776531, -176.61503916999186, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = g[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += g[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized upper incomplete gamma Q(s, x) (series below s+1, continued fraction above). */
export function gammaQ(s: number, x: number): number {
  if (x <= 0) return 1;
  if (x < s + 1) {
    let sum = 1 / s;
    let term = sum;
    for (let n = 1; n < 1000; n++) {
      term *= x / (s + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return Math.max(0, 1 - sum * Math.exp(-x + s * Math.log(x) - logGamma(s)));
  }
  // Lentz's continued fraction
  let b = x + 1 - s;
  let c = 1e300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - s);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(-x + s * Math.log(x) - logGamma(s)) * h;
}

/** P(X > x) for X ~ chi-square with `df` degrees of freedom. */
export function chiSquareSurvival(x: number, df: number): number {
  return gammaQ(df / 2, x / 2);
}

/** Chi-square goodness of fit of observed counts to expected proportions; p-value and statistic. */
export function chiSquareTest(
  observed: readonly number[],
  expectedShares: readonly number[],
): { statistic: number; df: number; pValue: number } {
  const n = observed.reduce((a, b) => a + b, 0);
  const total = expectedShares.reduce((a, b) => a + b, 0);
  let stat = 0;
  let df = -1;
  observed.forEach((o, i) => {
    const e = (n * expectedShares[i]) / total;
    if (e > 0) {
      stat += ((o - e) * (o - e)) / e;
      df++;
    } else if (o > 0) {
      stat = Infinity;
    }
  });
  df = Math.max(df, 1);
  return { statistic: stat, df, pValue: n === 0 ? 1 : chiSquareSurvival(stat, df) };
}

/** Wilson score interval for k successes in n trials. */
export function wilson(k: number, n: number, confidence = 0.95): { estimate: number; low: number; high: number } {
  if (n === 0) return { estimate: NaN, low: 0, high: 1 };
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const p = k / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
  return { estimate: p, low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/**
 * Always-valid inference for the difference of two proportions (candidate -
 * control), using the asymptotic confidence sequence of Howard et al.
 * ("Time-uniform, nonparametric, nonasymptotic confidence sequences", 2021),
 * as GrowthBook's sequential testing does. Looking at it after every sample
 * keeps the false-positive rate at alpha. `tuningN` is the total sample size
 * at which the sequence is tightest.
 */
export function sequentialDifference(
  control: { k: number; n: number },
  candidate: { k: number; n: number },
  alpha = 0.05,
  tuningN = 5000,
): { difference: number; low: number; high: number; pValue: number } {
  const { k: k0, n: n0 } = control;
  const { k: k1, n: n1 } = candidate;
  if (n0 < 2 || n1 < 2) return { difference: NaN, low: -1, high: 1, pValue: 1 };
  const p0 = k0 / n0;
  const p1 = k1 / n1;
  const diff = p1 - p0;
  // Variance of the difference; floor keeps a 0/n or n/n arm from claiming certainty.
  const v = Math.max(p0 * (1 - p0), 0.25 / n0) / n0 + Math.max(p1 * (1 - p1), 0.25 / n1) / n1;
  const t = n0 + n1;
  const rho2 = (-2 * Math.log(alpha) + Math.log(-2 * Math.log(alpha) + 1)) / tuningN;
  const s2 = t * v; // per-unit variance, so that s2 / t = v
  const half = Math.sqrt(s2) * Math.sqrt(((2 * (t * rho2 + 1)) / (t * t * rho2)) * Math.log(Math.sqrt(t * rho2 + 1) / alpha));
  // The smallest alpha whose sequence excludes 0.
  const p = Math.sqrt(t * rho2 + 1) * Math.exp((-diff * diff * t * t * rho2) / (2 * s2 * (t * rho2 + 1)));
  return { difference: diff, low: diff - half, high: diff + half, pValue: Math.min(1, p) };
}

/** Labelled samples per arm a fixed-horizon two-sided test needs to detect the observed difference. */
export function samplesPerArm(p0: number, p1: number, alpha = 0.05, power = 0.8): number {
  const d = Math.abs(p1 - p0);
  if (!(d > 0)) return Infinity;
  const z = normalQuantile(1 - alpha / 2) + normalQuantile(power);
  return Math.ceil((z * z * (p0 * (1 - p0) + p1 * (1 - p1))) / (d * d));
}

const EPS = 1e-4;

function shares(counts: readonly number[]): number[] {
  const n = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => (n > 0 ? c / n : 0));
}

/** Population stability index of live bin counts against reference bin shares. */
export function psi(live: readonly number[], reference: readonly number[]): number {
  const a = shares(live);
  const e = shares(reference);
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const ai = Math.max(a[i], EPS);
    const ei = Math.max(e[i], EPS);
    sum += (ai - ei) * Math.log(ai / ei);
  }
  return sum;
}

/** Jensen-Shannon distance (square root of the divergence, log base 2: 0..1). */
export function jensenShannonDistance(live: readonly number[], reference: readonly number[]): number {
  const p = shares(live);
  const q = shares(reference);
  let js = 0;
  for (let i = 0; i < p.length; i++) {
    const m = (p[i] + q[i]) / 2;
    if (p[i] > 0) js += 0.5 * p[i] * Math.log2(p[i] / m);
    if (q[i] > 0) js += 0.5 * q[i] * Math.log2(q[i] / m);
  }
  return Math.sqrt(Math.max(0, js));
}

/** P(K > x) for the Kolmogorov distribution (the limit of sqrt(n) * D_n). */
export function kolmogorovSurvival(x: number): number {
  if (x <= 0) return 1;
  if (x < 0.2) return 1;
  let sum = 0;
  for (let k = 1; k < 100; k++) {
    const term = 2 * (k % 2 === 1 ? 1 : -1) * Math.exp(-2 * k * k * x * x);
    sum += term;
    if (Math.abs(term) < 1e-12) break;
  }
  return Math.min(1, Math.max(0, sum));
}

/**
 * One-sample Kolmogorov-Smirnov test of live values, binned on the
 * reference's quantile edges, against the reference CDF (which is k/(m-1)
 * at quantile edge k). D is the largest gap at the edges; the p-value uses
 * the asymptotic distribution with Stephens' small-sample correction.
 */
export function ksFromQuantileBins(liveCountsBelowEdges: readonly number[], n: number): { statistic: number; pValue: number } {
  if (n === 0) return { statistic: 0, pValue: 1 };
  const m = liveCountsBelowEdges.length;
  let d = 0;
  for (let k = 0; k < m; k++) d = Math.max(d, Math.abs(liveCountsBelowEdges[k] / n - k / (m - 1)));
  const sqrtN = Math.sqrt(n);
  return { statistic: d, pValue: kolmogorovSurvival((sqrtN + 0.12 + 0.11 / sqrtN) * d) };
}
