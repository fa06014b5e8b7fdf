/**
 * Which requests the service has taken on, so that a shutdown finishes all
 * of them and takes no more.
 *
 * A transport admits a request when it starts on it (HTTP: headers read;
 * gRPC: message received) and releases it when the answer is written or the
 * client is gone. Once draining starts, admit() refuses with UNAVAILABLE and
 * Retry-After, and whenIdle() resolves when the last admitted request has
 * been released. The counts say, after the fact, what the drain did.
 */
import { ServiceError } from './errors';

export interface DrainStats {
  /** Requests admitted and not yet answered when draining started. */
  inFlightAtDrain: number;
  /** Of those, answered since. */
  finished: number;
  /** Requests refused because the service was draining. */
  refused: number;
}

export class Admission {
  private inFlight = 0;
  private draining = false;
  private readonly stats: DrainStats = { inFlightAtDrain: 0, finished: 0, refused: 0 };
  private idleWaiters: Array<() => void> = [];

  get isDraining(): boolean {
    return this.draining;
  }

  get active(): number {
    return this.inFlight;
  }

  /** Take on one request; call the returned function exactly when it is answered (extra calls are ignored). */
  admit(): () => void {
    if (this.draining) {
      this.stats.refused++;
      throw new ServiceError('UNAVAILABLE', 'draining: the service is shutting down; retry on another replica', { retryAfterSeconds: 1 });
    }
    this.inFlight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight--;
      if (this.draining) this.stats.finished++;
      if (this.inFlight === 0) this.wakeIdle();
    };
  }

  startDraining(): void {
    if (this.draining) return;
    this.draining = true;
    this.stats.inFlightAtDrain = this.inFlight;
  }

  /** Resolves true when nothing admitted is in flight, false if `timeoutMs` passes first. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }

  drainStats(): DrainStats {
    return { ...this.stats };
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
