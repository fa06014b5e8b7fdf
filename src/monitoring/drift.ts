/**
 * Confidence and class-mix drift of one model's live predictions against
 * the reference distributions in its manifest (computed on the validation
 * split at training time), over sliding windows.
 *
 * Per minute it keeps: the count, the sum of top-1 confidences (their mean
 * is the estimated accuracy, as the confidences are calibrated), counts in
 * the reference's decile bins (PSI, Jensen-Shannon), counts between the
 * reference's 101 quantiles (Kolmogorov-Smirnov against the reference CDF),
 * and predicted-class counts (chi-square against the reference mix).
 */
import { chiSquareTest, jensenShannonDistance, ksFromQuantileBins, psi } from './stats';
import { MinuteWindows } from './windows';

export interface DriftReference {
  binEdges: readonly number[];
  counts: readonly number[];
  quantiles: readonly number[];
  classCounts: readonly number[];
}

export interface DriftThresholds {
  /** Below this many predictions in a window, nothing is flagged. */
  minSamples: number;
  psi: number;
  pValue: number;
}

export const DEFAULT_THRESHOLDS: DriftThresholds = { minSamples: 500, psi: 0.2, pValue: 0.01 };

export interface DriftReport {
  /** Predictions in the window, abstained ones included (the distributions compare every input with the reference). */
  samples: number;
  /** Of those, the ones answered without a label: not in the accuracy estimate. */
  abstained: number;
  /** Mean calibrated top-1 confidence of the answered predictions: the accuracy expected before labels arrive. */
  estimatedAccuracy: number | null;
  psi: number | null;
  jsDistance: number | null;
  ksStatistic: number | null;
  ksPValue: number | null;
  classChiSquarePValue: number | null;
  drift: boolean;
  /** Why drift is flagged, or why it cannot be judged yet. */
  reasons: string[];
}

/** Index of the bin in (edges[i-1], edges[i]] that holds x; 0 below the first edge, edges.length above the last. */
export function binIndex(edges: readonly number[], x: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x <= edges[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export class DriftMonitor {
  private readonly windows: MinuteWindows;
  private readonly decileStart = 2;
  private readonly quantileStart: number;
  private readonly classStart: number;
  /** Series 0 counts every prediction, series 1 sums the answered ones' confidences, this one counts them. */
  private readonly answeredStart: number;
  private readonly innerEdges: number[];

  constructor(
    readonly reference: DriftReference,
    readonly thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
    now: () => number = Date.now,
  ) {
    const deciles = reference.binEdges.length - 1;
    this.quantileStart = this.decileStart + deciles;
    this.classStart = this.quantileStart + reference.quantiles.length + 1;
    this.answeredStart = this.classStart + reference.classCounts.length;
    this.windows = new MinuteWindows(this.answeredStart + 1, 1440, now);
    this.innerEdges = reference.binEdges.slice(1, -1) as number[];
  }

  /** One prediction; `answered` false for an abstention (in the distributions, not in the accuracy estimate). */
  record(confidence: number, classIndex: number, answered = true): void {
    const w = this.windows;
    w.add(0);
    if (answered) {
      w.add(1, confidence);
      w.add(this.answeredStart);
    }
    w.add(this.decileStart + binIndex(this.innerEdges, confidence));
    w.add(this.quantileStart + binIndex(this.reference.quantiles, confidence));
    w.add(this.classStart + classIndex);
  }

  report(minutes: number): DriftReport {
    const sums = this.windows.sum(minutes);
    const n = sums[0];
    const answered = sums[this.answeredStart];
    const empty: DriftReport = {
      samples: n,
      abstained: n - answered,
      estimatedAccuracy: null,
      psi: null,
      jsDistance: null,
      ksStatistic: null,
      ksPValue: null,
      classChiSquarePValue: null,
      drift: false,
      reasons: [],
    };
    if (n === 0) return { ...empty, reasons: ['no predictions in this window'] };
    const deciles = Array.from(sums.subarray(this.decileStart, this.quantileStart));
    const between = sums.subarray(this.quantileStart, this.classStart);
    const classes = Array.from(sums.subarray(this.classStart, this.answeredStart));
    // Live counts at or below each reference quantile edge: cumulative bins.
    const below: number[] = [];
    let cum = 0;
    for (let k = 0; k < this.reference.quantiles.length; k++) {
      cum += between[k];
      below.push(cum);
    }
    const ks = ksFromQuantileBins(below, n);
    const report: DriftReport = {
      samples: n,
      abstained: n - answered,
      estimatedAccuracy: answered > 0 ? sums[1] / answered : null,
      psi: psi(deciles, this.reference.counts),
      jsDistance: jensenShannonDistance(deciles, this.reference.counts),
      ksStatistic: ks.statistic,
      ksPValue: ks.pValue,
      classChiSquarePValue: chiSquareTest(classes, this.reference.classCounts).pValue,
      drift: false,
      reasons: [],
    };
    const t = this.thresholds;
    if (n < t.minSamples) {
      report.reasons.push(`${n} predictions in this window; drift is judged from ${t.minSamples}`);
      return report;
    }
    if (report.psi! > t.psi) report.reasons.push(`confidence PSI ${report.psi!.toFixed(3)} > ${t.psi}`);
    if (report.ksPValue! < t.pValue) report.reasons.push(`confidence KS p ${report.ksPValue!.toExponential(2)} < ${t.pValue}`);
    if (report.classChiSquarePValue! < t.pValue)
      report.reasons.push(`class mix chi-square p ${report.classChiSquarePValue!.toExponential(2)} < ${t.pValue}`);
    report.drift = report.reasons.length > 0;
    return report;
  }
}
