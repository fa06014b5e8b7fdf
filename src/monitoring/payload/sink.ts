/** What the payload logger hands records to, and the timers it and the sinks wait with. */
import type { PayloadRecord } from './record';

/** How one record fared in a sink. */
export type SinkOutcome = 'sent' | 'sink_error' | 'timeout';

export interface PayloadSink {
  /** The `sink` label of the counts: `http` or `file`. */
  readonly name: string;
  /** Records the sink may have in flight at once (1 keeps them in order). */
  readonly concurrency: number;
  /** Writes one record; settles with its outcome and never rejects. */
  send(record: PayloadRecord): Promise<SinkOutcome>;
  /** Stops: aborts what is in flight (each send then settles) and frees sockets and files. */
  close(): Promise<void>;
}

/** setTimeout and clearTimeout, injectable so tests decide when a bound expires. */
export interface Timers {
  setTimeout(fire: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fire, ms) => setTimeout(fire, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
