/**
 * Which predictions the payload log keeps: every flagged, abstained or
 * low-confidence one (the cases a labelling loop wants most), and ordinary
 * traffic at `rate`. Pure: the random source is a parameter.
 */
import type { PayloadReason } from './record';

export interface SamplingInput {
  /** Share of ordinary predictions logged, 0..1. */
  rate: number;
  /** Flagged (out of distribution, or flagged by another check). */
  flagged?: boolean;
  /** The service declined to answer with a label. */
  abstained?: boolean;
  /** The top-1 confidence is under the caller's threshold. */
  lowConfidence?: boolean;
  /** Uniform in [0, 1); called only for ordinary predictions. */
  random: () => number;
}

/** Why this prediction is logged, or undefined when it is not. The first reason that applies wins. */
export function sampleReason(input: SamplingInput): PayloadReason | undefined {
  if (input.flagged) return 'flagged';
  if (input.abstained) return 'abstained';
  if (input.lowConfidence) return 'low-confidence';
  return input.rate > 0 && input.random() < input.rate ? 'sampled' : undefined;
}

export function shouldLog(input: SamplingInput): boolean {
  return sampleReason(input) !== undefined;
}

/** Rejects a rate outside 0..1 (or not a number). */
export function checkRate(rate: number): number {
  if (!(rate >= 0 && rate <= 1)) throw new Error(`payload log rate must be within 0..1, not ${rate}`);
  return rate;
}
