/**
 * Timers that fire only when a test says so, for code that takes a
 * `Timers` (src/monitoring/payload/sink.ts): a bound "expires" at the point
 * the test chooses, whatever the real clock did meanwhile.
 */
import type { Timers } from '../../src/monitoring/payload/sink';

export class ManualTimers implements Timers {
  private nextId = 1;
  private readonly pending = new Map<number, { fire: () => void; ms: number }>();

  setTimeout(fire: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.pending.set(id, { fire, ms });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** Timers armed and not yet fired or cleared, of `ms` if given. */
  armed(ms?: number): number {
    return [...this.pending.values()].filter((t) => ms === undefined || t.ms === ms).length;
  }

  /** Fires the armed timers of `ms` (all if not given); returns how many fired. */
  fire(ms?: number): number {
    const due = [...this.pending].filter(([, t]) => ms === undefined || t.ms === ms);
    for (const [id] of due) this.pending.delete(id);
    for (const [, t] of due) t.fire();
    return due.length;
  }
}
