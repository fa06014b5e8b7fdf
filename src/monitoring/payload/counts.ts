/** What became of the records offered to each sink: the figures the metrics read. */

/** Why a record was not delivered. */
export const DROP_REASONS = ['queue_full', 'sink_error', 'timeout', 'shutdown'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Each record offered to a sink ends in exactly one of these. */
export type PayloadOutcome = 'sent' | DropReason;

/**
 * Told of every outcome as it happens. A prom-client
 * `Counter<'sink' | 'outcome'>` is one as it is.
 */
export interface PayloadCounter {
  inc(labels: { sink: string; outcome: PayloadOutcome }): void;
}

/** One sink's figures. */
export interface SinkCounts {
  /** Records taken into the queue (all time). */
  queued: number;
  sent: number;
  dropped: Record<DropReason, number>;
  /** Waiting in the queue now. */
  pending: number;
  /** Being written now. */
  inFlight: number;
}

/** Every outcome, as it was decided. */
export interface Settled {
  sink: string;
  id: string;
  outcome: PayloadOutcome;
}

export function emptyCounts(): SinkCounts {
  const dropped = Object.fromEntries(DROP_REASONS.map((reason) => [reason, 0])) as Record<DropReason, number>;
  return { queued: 0, sent: 0, dropped, pending: 0, inFlight: 0 };
}
