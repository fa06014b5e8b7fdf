/**
 * One sink's bounded queue and its sender: `offer` only pushes (or drops
 * when the queue holds `capacity`); the sender, on a later turn of the event
 * loop, keeps up to the sink's concurrency of records in flight. Every
 * record offered is reported once, with its outcome.
 */
import type { AppLogger } from '../../core/logger';
import { emptyCounts, type PayloadOutcome, type SinkCounts } from './counts';
import type { PayloadRecord } from './record';
import type { PayloadSink, SinkOutcome } from './sink';

/** A record on its way: its own object, so the same record logged twice is two entries. */
interface Entry {
  record: PayloadRecord;
}

export class SinkQueue {
  private readonly queue: Entry[] = [];
  private readonly inFlight = new Set<Entry>();
  private readonly figures = emptyCounts();
  private scheduled = false;
  private closed = false;
  private failing = false;
  private full = false;

  constructor(
    readonly sink: PayloadSink,
    private readonly capacity: number,
    private readonly report: (sink: string, id: string, outcome: PayloadOutcome) => void,
    private readonly log?: AppLogger,
  ) {}

  /** Queues the record, or drops it (queue full, or closed); never throws. */
  offer(record: PayloadRecord): boolean {
    if (this.closed) {
      this.decide(record, 'shutdown');
      return false;
    }
    if (this.queue.length >= this.capacity) {
      if (!this.full) this.log?.warn({ sink: this.sink.name, capacity: this.capacity }, 'payload log queue full: dropping records');
      this.full = true;
      this.decide(record, 'queue_full');
      return false;
    }
    this.full = false;
    this.queue.push({ record });
    this.figures.queued++;
    this.schedule();
    return true;
  }

  counts(): SinkCounts {
    return { ...this.figures, dropped: { ...this.figures.dropped }, pending: this.queue.length, inFlight: this.inFlight.size };
  }

  /** Nothing queued and nothing in flight. */
  idle(): boolean {
    return this.queue.length === 0 && this.inFlight.size === 0;
  }

  /** Takes no more records; what is queued still goes out. */
  stopIntake(): void {
    this.closed = true;
  }

  /** Drops everything queued and in flight, as `shutdown` (a send settling later changes nothing). */
  abandon(): void {
    for (const entry of this.queue.splice(0)) this.decide(entry.record, 'shutdown');
    for (const entry of [...this.inFlight]) {
      this.inFlight.delete(entry);
      this.decide(entry.record, 'shutdown');
    }
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight.size < this.sink.concurrency && this.queue.length > 0) {
      const entry = this.queue.shift()!;
      this.inFlight.add(entry);
      let sending: Promise<SinkOutcome>;
      try {
        sending = this.sink.send(entry.record);
      } catch {
        sending = Promise.resolve('sink_error');
      }
      void sending
        .catch((): SinkOutcome => 'sink_error')
        .then((outcome) => this.finish(entry, outcome))
        .catch(() => undefined); // nothing after the send may become an unhandled rejection
    }
  }

  private finish(entry: Entry, outcome: SinkOutcome): void {
    if (!this.inFlight.delete(entry)) return; // abandoned at close, already counted
    if (outcome === 'sent' && this.failing) this.log?.info({ sink: this.sink.name }, 'payload log sink recovered');
    if (outcome !== 'sent' && !this.failing)
      this.log?.warn({ sink: this.sink.name, outcome }, 'payload log sink failing: dropping records');
    this.failing = outcome !== 'sent';
    this.decide(entry.record, outcome);
    this.pump();
  }

  private decide(record: PayloadRecord, outcome: PayloadOutcome): void {
    if (outcome === 'sent') this.figures.sent++;
    else this.figures.dropped[outcome]++;
    this.report(this.sink.name, record.id, outcome);
  }
}
