/**
 * Steady closed-loop traffic for the under-load tests: a few workers, each
 * sending one request after another over HTTP (keep-alive) or gRPC and
 * recording every outcome, until stopped (or until a worker is refused, for
 * the shutdown test, as a client that moves to another replica would).
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
  readonly outcomes: Outcome[] = [];

  /** Start every worker now; a worker stops by itself once `until` says so of one of its outcomes. */
  constructor(workers: Worker[], until: (o: Outcome) => boolean = () => false) {
    this.loops = workers.map(async (work) => {
      while (this.running) {
        const o = await work();
        this.outcomes.push(o);
        if (until(o)) return;
      }
    });
  }

  /** Outcomes of requests sent after `t` (performance.now()). */
  sentAfter(t: number): Outcome[] {
    return this.outcomes.filter((o) => o.sentAt > t);
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
}

/** Failed outcomes, one line each, for assertion messages. */
export function describeFailures(outcomes: Outcome[]): string {
  return outcomes
    .filter((o) => !o.ok)
    .slice(0, 10)
    .map((o) => `${o.transport} ${o.status} ${o.code ?? ''} ${o.message ?? ''}`)
    .join('\n');
}
