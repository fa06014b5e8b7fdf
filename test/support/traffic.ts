/**
 * Steady closed-loop traffic for the under-load tests: a few workers, each
 * sending one request after another over HTTP (keep-alive) or gRPC and
 * recording every outcome, until stopped (or until a worker is refused, for
 * the shutdown test, as a client that moves to another replica would).
 *
 * Tests do not let it run "for a while": they wait, with `when`, for the
 * outcomes they need (every worker answered since a mark, N answers sent
 * after some moment), which is an event, however fast the machine is.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type * as grpc from '@grpc/grpc-js';

export interface Outcome {
  transport: 'http' | 'grpc';
  /** performance.now() at send and at answer. */
  sentAt: number;
  answeredAt: number;
  /** 200 / gRPC 0 when classified. */
  ok: boolean;
  /** HTTP status, gRPC status number, or the connection error code (ECONNRESET, ...). */
  status: number | string;
  code?: string;
  message?: string;
  retryAfter?: string;
  connection?: string;
  model?: string;
  version?: string;
  arm?: string;
  /** For batch answers: the arm of each item. */
  arms?: string[];
  /** Which worker of the Traffic sent it (set by Traffic). */
  worker?: number;
}

export type Worker = () => Promise<Outcome>;

export function httpWorker(port: number, agent: http.Agent, path: string, body: unknown, headers: Record<string, string> = {}): Worker {
  const payload = Buffer.from(JSON.stringify(body));
  return () =>
    new Promise((resolve) => {
      const sentAt = performance.now();
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path,
          agent,
          headers: { 'content-type': 'application/json', 'content-length': String(payload.length), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const out: Outcome = {
              transport: 'http',
              sentAt,
              answeredAt: performance.now(),
              ok: res.statusCode === 200,
              status: res.statusCode!,
              connection: res.headers.connection,
            };
            try {
              const b = JSON.parse(Buffer.concat(chunks).toString());
              if (b.error) Object.assign(out, { code: b.error.code, message: b.error.message, retryAfter: res.headers['retry-after'] });
              else if (Array.isArray(b.results))
                Object.assign(out, {
                  arms: b.results.map((r: { arm?: string }) => r.arm),
                  model: b.results[0]?.model,
                  version: b.results[0]?.version,
                  arm: b.results[0]?.arm,
                });
              else Object.assign(out, { model: b.model, version: b.version, arm: b.arm });
            } catch {
              out.ok = false;
              out.message = 'unparseable body';
            }
            resolve(out);
          });
          res.on('error', (err: NodeJS.ErrnoException) =>
            resolve({ transport: 'http', sentAt, answeredAt: performance.now(), ok: false, status: err.code ?? err.message }),
          );
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) =>
        resolve({ transport: 'http', sentAt, answeredAt: performance.now(), ok: false, status: err.code ?? err.message }),
      );
      req.end(payload);
    });
}

export function grpcWorker(client: grpc.Client & Record<string, any>, method: string, request: unknown): Worker {
  return () =>
    new Promise((resolve) => {
      const sentAt = performance.now();
      client[method](request, (err: grpc.ServiceError | null, res: any) => {
        const answeredAt = performance.now();
        if (err) {
          resolve({
            transport: 'grpc',
            sentAt,
            answeredAt,
            ok: false,
            status: err.code,
            code: err.metadata?.get('x-error-code')[0] as string | undefined,
            message: err.details,
            retryAfter: err.metadata?.get('retry-after')[0] as string | undefined,
          });
        } else if (Array.isArray(res.results)) {
          const first = res.results[0]?.classification;
          resolve({
            transport: 'grpc',
            sentAt,
            answeredAt,
            ok: true,
            status: 0,
            arms: res.results.map((r: any) => r.classification?.arm),
            model: first?.model,
            version: first?.version,
            arm: first?.arm,
          });
        } else {
          resolve({ transport: 'grpc', sentAt, answeredAt, ok: true, status: 0, model: res.model, version: res.version, arm: res.arm });
        }
      });
    });
}

export class Traffic {
  private running = true;
  private readonly loops: Promise<void>[];
  private readonly waiters = new Set<() => void>();
  readonly outcomes: Outcome[] = [];
  /** Requests sent so far; each one gets exactly one outcome. */
  sent = 0;
  /** Outcomes recorded per worker. */
  readonly perWorker: number[];

  /** Start every worker now; a worker stops by itself once `until` says so of one of its outcomes. */
  constructor(workers: Worker[], until: (o: Outcome) => boolean = () => false) {
    this.perWorker = workers.map(() => 0);
    this.loops = workers.map(async (work, worker) => {
      try {
        while (this.running) {
          this.sent++;
          const o = await work();
          o.worker = worker;
          this.outcomes.push(o);
          this.perWorker[worker]++;
          this.wake();
          if (until(o)) return;
        }
      } finally {
        this.wake();
      }
    });
  }

  /** Outcomes of requests sent after `t` (performance.now()). */
  sentAfter(t: number): Outcome[] {
    return this.outcomes.filter((o) => o.sentAt > t);
  }

  /** Outcomes recorded per worker so far, to pass to `everyWorkerSince`. */
  mark(): number[] {
    return [...this.perWorker];
  }

  /**
   * Resolves once `cond` holds of the outcomes so far. It is checked each
   * time an outcome is recorded (an event), never on a clock; it fails if
   * every worker has stopped first, or after `timeoutMs` (a safety net).
   */
  when(cond: (outcomes: Outcome[]) => boolean, what: string, timeoutMs = 120_000): Promise<void> {
    let waiter: () => void = () => undefined;
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    void Promise.all(this.loops).then(() => {
      stopped = true;
      waiter();
    });
    return new Promise<void>((resolve, reject) => {
      waiter = () => {
        if (cond(this.outcomes)) resolve();
        else if (stopped) reject(new Error(`traffic stopped before ${what} (${this.outcomes.length} outcomes)`));
      };
      timer = setTimeout(
        () => reject(new Error(`still waiting after ${timeoutMs} ms for ${what} (${this.outcomes.length} outcomes)`)),
        timeoutMs,
      );
      this.waiters.add(waiter);
      waiter();
    }).finally(() => {
      clearTimeout(timer);
      this.waiters.delete(waiter);
    });
  }

  /**
   * Every worker has had `n` more outcomes than at `mark`: with n >= 2, each
   * one has also sent a request after the mark and had it answered.
   */
  everyWorkerSince(mark: number[], n = 2): Promise<void> {
    return this.when(() => this.perWorker.every((k, w) => k >= mark[w] + n), `${n} more outcomes from every worker`);
  }

  async stop(): Promise<Outcome[]> {
    this.running = false;
    await Promise.all(this.loops);
    return this.outcomes;
  }

  /** Resolves once every worker has stopped by itself. */
  async finished(): Promise<Outcome[]> {
    await Promise.all(this.loops);
    return this.outcomes;
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** Failed outcomes, one line each, for assertion messages. */
export function describeFailures(outcomes: Outcome[]): string {
  return outcomes
    .filter((o) => !o.ok)
    .slice(0, 10)
    .map((o) => `${o.transport} ${o.status} ${o.code ?? ''} ${o.message ?? ''}`)
    .join('\n');
}
