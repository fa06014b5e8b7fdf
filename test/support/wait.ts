/**
 * Waiting in tests without leaning on the clock.
 *
 * A test waits for something the code does: an event, a promise it
 * resolves, a log line it writes. The only timers here are safety nets
 * (`timeoutMs`): they turn an event that never comes into a failure that
 * says what was awaited, and no assertion depends on how long anything took.
 *
 * `pollUntil` is for the one case with no event to wait on: another process
 * (Prometheus, the service started as a child process, a container's
 * HEALTHCHECK) whose state can only be asked for. It asks again until the
 * condition holds; the interval only sets how often it asks.
 */
import { Writable } from 'node:stream';

/** `p`, or a rejection naming `what` if it has not settled after `timeoutMs` (a safety net, not a measurement). */
export function withTimeout<T>(p: Promise<T>, what: string, timeoutMs = 60_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still waiting after ${timeoutMs} ms for ${what}`)), timeoutMs);
  });
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}

/** Resolves with the first emission of `event` from `emitter` whose argument satisfies `match`. */
export function nextEvent<T = unknown>(
  emitter: { on(event: string, f: (arg: T) => void): unknown; off(event: string, f: (arg: T) => void): unknown },
  event: string,
  match: (arg: T) => boolean = () => true,
  what = `'${event}'`,
  timeoutMs?: number,
): Promise<T> {
  let listener: (arg: T) => void = () => undefined;
  const heard = new Promise<T>((resolve) => {
    listener = (arg: T) => {
      if (!match(arg)) return;
      emitter.off(event, listener);
      resolve(arg);
    };
    emitter.on(event, listener);
  });
  return withTimeout(heard, what, timeoutMs).finally(() => emitter.off(event, listener));
}

/**
 * Asks `probe` until it answers true; for processes that offer no event to
 * wait on. Throws if `stop` says the process is gone, or after `timeoutMs`.
 */
export async function pollUntil(
  what: string,
  probe: () => Promise<boolean> | boolean,
  opts: { timeoutMs?: number; intervalMs?: number; stop?: () => string | undefined } = {},
): Promise<void> {
  const { timeoutMs = 30_000, intervalMs = 100 } = opts;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await Promise.resolve(probe()).catch(() => false)) return;
    const gone = opts.stop?.();
    if (gone !== undefined) throw new Error(`${what}: ${gone}`);
    if (Date.now() > deadline) throw new Error(`${what}: not so after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** One structured (pino) log line. */
// Log fields are whatever the code logged.
export type LogLine = Record<string, any> & { level: number; msg?: string };

/**
 * A pino destination that keeps the lines (parsed) and lets a test wait for
 * the line the code writes when something happens:
 *
 *   const mark = log.mark();
 *   ...do something...
 *   await log.waitFor((l) => l.msg === 'routing config applied', { from: mark });
 *
 * Lines written between `mark()` and `waitFor` are found too, so there is no
 * race between doing something and starting to wait for it. Without `from`,
 * every line kept so far is searched.
 */
export class LogCapture {
  readonly lines: LogLine[] = [];
  readonly stream: Writable;
  private readonly waiters = new Set<() => void>();

  /** `keep`: which lines to keep (all by default); the others are dropped as they come. */
  constructor(private readonly keep: (l: LogLine) => boolean = () => true) {
    this.stream = new Writable({
      write: (chunk, _enc, cb) => {
        for (const text of String(chunk).split('\n')) {
          if (!text.trim()) continue;
          const line = JSON.parse(text) as LogLine;
          if (this.keep(line)) this.lines.push(line);
        }
        for (const w of [...this.waiters]) w();
        cb();
      },
    });
  }

  /** The position of the next line to be written. */
  mark(): number {
    return this.lines.length;
  }

  /** Resolves with the first line from position `from` on (default: the first line kept) that matches. */
  waitFor(match: (l: LogLine) => boolean, opts: { from?: number; what?: string; timeoutMs?: number } = {}): Promise<LogLine> {
    const start = opts.from ?? 0;
    const find = () => this.lines.slice(start).find(match);
    let waiter: () => void = () => undefined;
    const found = new Promise<LogLine>((resolve) => {
      waiter = () => {
        const hit = find();
        if (hit) resolve(hit);
      };
      this.waiters.add(waiter);
      waiter();
    });
    return withTimeout(found, opts.what ?? 'a log line', opts.timeoutMs).finally(() => this.waiters.delete(waiter));
  }
}
