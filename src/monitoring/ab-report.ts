/**
 * The A/B report: per arm, how many requests it was assigned and how many
 * labels came back, accuracy with a 95% Wilson interval; per candidate arm
 * against the control, the difference with an always-valid interval and
 * p-value (safe to look at every hour), the labels still needed for the
 * observed effect; a sample-ratio-mismatch check against the configured
 * weights; and a plain verdict.
 */
import { chiSquareTest, samplesPerArm, sequentialDifference, wilson } from './stats';

export interface ArmCounts {
  name: string;
  model: string;
  /** Configured share of traffic (weights normalized to 1). */
  weight: number;
  /** Requests routed to this arm inside the experiment (abstained ones included: the split is about routing). */
  assigned: number;
  /** Of those, the predictions the arm abstained on: neither answers nor errors, so not in its accuracy. */
  abstained: number;
  /** Labels that came back for the arm's answers (feedback on abstentions is counted apart). */
  labelled: number;
  correct: number;
}

export type Verdict = 'candidate-better' | 'candidate-worse' | 'not-decided';

export interface Comparison {
  candidate: string;
  control: string;
  difference: number | null;
  low: number | null;
  high: number | null;
  pValue: number;
  /** Labels per arm a fixed test would need to confirm the observed difference (null when there is none yet). */
  labelsNeededPerArm: number | null;
  verdict: Verdict;
  reason: string;
}

export interface AbReport {
  experiment: string;
  control: string;
  alpha: number;
  arms: (ArmCounts & { accuracy: number | null; low: number; high: number })[];
  sampleRatio: { pValue: number; mismatch: boolean };
  comparisons: Comparison[];
}

export interface AbOptions {
  alpha: number;
  /** Labels per arm below which no verdict is given, whatever the p-value. */
  minLabelsPerArm: number;
  /** SRM p-value below which the split is called broken (strict: SRM tests run continuously). */
  srmAlpha: number;
}

export const DEFAULT_AB_OPTIONS: AbOptions = { alpha: 0.05, minLabelsPerArm: 100, srmAlpha: 0.001 };

export function abReport(experiment: string, control: string, arms: readonly ArmCounts[], opts: AbOptions = DEFAULT_AB_OPTIONS): AbReport {
  const srm = chiSquareTest(
    arms.map((a) => a.assigned),
    arms.map((a) => a.weight),
  );
  const mismatch = arms.length > 1 && srm.pValue < opts.srmAlpha;
  const ctrl = arms.find((a) => a.name === control);
  const comparisons: Comparison[] = [];
  for (const arm of arms) {
    if (!ctrl || arm.name === control) continue;
    const seq = sequentialDifference({ k: ctrl.correct, n: ctrl.labelled }, { k: arm.correct, n: arm.labelled }, opts.alpha);
    const has = Number.isFinite(seq.difference);
    const needed = has ? samplesPerArm(ctrl.correct / ctrl.labelled, arm.correct / arm.labelled, opts.alpha) : Infinity;
    let verdict: Verdict = 'not-decided';
    let reason: string;
    const fewest = Math.min(ctrl.labelled, arm.labelled);
    if (mismatch) {
      reason = `sample ratio mismatch (p ${srm.pValue.toExponential(2)}): the split does not follow the weights, so the comparison cannot be trusted; check routing and feedback`;
    } else if (fewest < opts.minLabelsPerArm) {
      reason = `${fewest} labels in the smaller arm; a verdict needs ${opts.minLabelsPerArm} per arm`;
    } else if (seq.pValue < opts.alpha && seq.difference > 0) {
      verdict = 'candidate-better';
      reason = `${arm.name} is more accurate by ${pts(seq.difference)} (always-valid ${ci(opts.alpha)} interval ${pts(seq.low)} to ${pts(seq.high)}, p ${fmtP(seq.pValue)})`;
    } else if (seq.pValue < opts.alpha && seq.difference < 0) {
      verdict = 'candidate-worse';
      reason = `${arm.name} is less accurate by ${pts(-seq.difference)} (always-valid ${ci(opts.alpha)} interval ${pts(seq.low)} to ${pts(seq.high)}, p ${fmtP(seq.pValue)})`;
    } else {
      reason =
        `no significant difference yet (${pts(seq.difference)}, p ${fmtP(seq.pValue)})` +
        (Number.isFinite(needed) ? `; about ${needed} labels per arm would settle a difference this size` : '');
    }
    comparisons.push({
      candidate: arm.name,
      control,
      difference: has ? seq.difference : null,
      low: has ? seq.low : null,
      high: has ? seq.high : null,
      pValue: seq.pValue,
      labelsNeededPerArm: Number.isFinite(needed) ? Math.max(0, needed - fewest) : null,
      verdict,
      reason,
    });
  }
  return {
    experiment,
    control,
    alpha: opts.alpha,
    arms: arms.map((a) => {
      const w = wilson(a.correct, a.labelled);
      return { ...a, accuracy: a.labelled > 0 ? w.estimate : null, low: w.low, high: w.high };
    }),
    sampleRatio: { pValue: srm.pValue, mismatch },
    comparisons,
  };
}

function pts(x: number): string {
  return `${(100 * x).toFixed(2)} points`;
}

function ci(alpha: number): string {
  return `${Math.round(100 * (1 - alpha))}%`;
}

function fmtP(p: number): string {
  return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}
