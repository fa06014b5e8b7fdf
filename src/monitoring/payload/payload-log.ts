/**
 * The payload logger for labelling loops: predictions worth a label (every
 * flagged, abstained or low-confidence one, and ordinary traffic at a
 * rate) go to a KServe-compatible CloudEvents receiver and/or a JSON-lines
 * file, off the request path.
 *
 * `log(record)` never blocks and never throws: it pushes the record onto
 * each sink's bounded queue (or drops it, counted, when that queue is full)
 * and returns. Each sink drains its own queue, so a hanging receiver never
 * holds up the file. Every record offered to a sink ends in one outcome:
 * sent, or dropped for queue_full, sink_error, timeout or shutdown; each
 * is counted, passed to the injected counter and emitted as 'settled'.
 */
import { EventEmitter } from 'node:events';
import type { AppLogger } from '../../core/logger';
import type { PayloadCounter, PayloadOutcome, Settled, SinkCounts } from './counts';
import type { PayloadReason, PayloadRecord } from './record';
import { checkRate, sampleReason } from './sampling';
import { type PayloadSink, realTimers, type Timers } from './sink';
import { SinkQueue } from './sink-queue';

export interface PayloadLoggerOptions {
  sinks: PayloadSink[];
  /** Records each sink's queue holds (default 1000). */
  queue?: number;
  /** Share of ordinary predictions `sample` picks, 0..1 (default 0.01). */
  rate?: number;
  /** Uniform in [0, 1) (default Math.random). */
  random?: () => number;
  /** Bound of `close()` when it is given none (default 5000 ms). */
  closeTimeoutMs?: number;
  counter?: PayloadCounter;
  logger?: AppLogger;
  timers?: Timers;
}

/** What the caller knows about a prediction when deciding whether to log it. */
export interface PredictionSignals {
  flagged?: boolean;
  abstained?: boolean;
  lowConfidence?: boolean;
}

export class PayloadLogger extends EventEmitter {
  readonly rate: number;
  private readonly queues: SinkQueue[];
  private readonly random: () => number;
  private readonly closeTimeoutMs: number;
  private readonly counter?: PayloadCounter;
  private readonly timers: Timers;
  private closing: Promise<boolean> | undefined;

  constructor(opts: PayloadLoggerOptions) {
    super();
    const capacity = opts.queue ?? 1000;
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`payload log queue must be an integer >= 1, not ${capacity}`);
    if (opts.sinks.length === 0) throw new Error('payload log needs a sink');
    this.rate = checkRate(opts.rate ?? 0.01);
    this.random = opts.random ?? Math.random;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 5000;
    this.counter = opts.counter;
    this.timers = opts.timers ?? realTimers;
    const report = (sink: string, id: string, outcome: PayloadOutcome) => this.report({ sink, id, outcome });
    this.queues = opts.sinks.map((sink) => new SinkQueue(sink, capacity, report, opts.logger));
  }

  /** Why this prediction should be logged (flagged, abstained, low-confidence, sampled at `rate`), or undefined. */
  sample(signals: PredictionSignals): PayloadReason | undefined {
    return sampleReason({ ...signals, rate: this.rate, random: this.random });
  }

  /** Hands the record to every sink's queue. True when at least one took it; never throws, never waits. */
  log(record: PayloadRecord): boolean {
    let taken = false;
    for (const q of this.queues) {
      try {
        if (q.offer(record)) taken = true;
      } catch {
        // Counting failed (a throwing counter or listener): the record's fate is already decided.
      }
    }
    return taken;
  }

  /** Each sink's figures, by sink name. */
  counts(): Record<string, SinkCounts> {
    return Object.fromEntries(this.queues.map((q) => [q.sink.name, q.counts()]));
  }

  /** Resolves true once everything queued has been written or dropped, or false after `timeoutMs`; drops nothing. */
  flush(timeoutMs: number): Promise<boolean> {
    const bound = this.bound(timeoutMs);
    return this.idleOr(bound.expired).finally(bound.cancel);
  }

  /**
   * Shuts down within `timeoutMs`: takes no more records, lets the queues
   * drain, then drops what is left (counted `shutdown`), aborts what is in
   * flight and closes the sinks. True when nothing had to be dropped.
   */
  close(timeoutMs = this.closeTimeoutMs): Promise<boolean> {
    this.closing ??= this.shutdown(timeoutMs);
    return this.closing;
  }

  private async shutdown(timeoutMs: number): Promise<boolean> {
    for (const q of this.queues) q.stopIntake();
    const bound = this.bound(timeoutMs);
    const drained = await this.idleOr(bound.expired);
    for (const q of this.queues) q.abandon();
    // Closing a sink is quick (sockets destroyed, a file closed) unless a disk hangs: never past the bound.
    await Promise.race([Promise.allSettled(this.queues.map((q) => q.sink.close())), bound.expired]);
    bound.cancel();
    return drained;
  }

  /** A timer of `timeoutMs` as a promise; `cancel` disarms it (the promise then never settles). */
  private bound(timeoutMs: number): { expired: Promise<void>; cancel: () => void } {
    let fire: () => void = () => undefined;
    const expired = new Promise<void>((resolve) => (fire = resolve));
    const timer = this.timers.setTimeout(() => fire(), timeoutMs);
    return { expired, cancel: () => this.timers.clearTimeout(timer) };
  }

  /** True as soon as every queue is idle; else, when `expired` settles, whether they are by then. */
  private idleOr(expired: Promise<void>): Promise<boolean> {
    const idle = () => this.queues.every((q) => q.idle());
    if (idle()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!idle()) return;
        this.off('settled', check);
        resolve(true);
      };
      this.on('settled', check);
      void expired.then(() => {
        this.off('settled', check);
        resolve(idle());
      });
    });
  }

  private report(settled: Settled): void {
    try {
      this.counter?.inc({ sink: settled.sink, outcome: settled.outcome });
    } catch {
      // A counter that throws must not reach the caller or the sender.
    }
    try {
      this.emit('settled', settled);
    } catch {
      // Nor a listener that throws.
    }
  }
}
