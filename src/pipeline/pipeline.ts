/**
 * The one path every request takes, whatever its transport: HTTP, the Open
 * Inference Protocol over REST, gRPC unary calls, and each message of a
 * gRPC stream. Transports only decode the request, hand the work to
 * `run` (or, where the transport must admit before it has the body, to
 * `begin` and `Call.finish`), and encode the answer or the error.
 *
 * Written once here, for all of them:
 *  - admission: a call that does work is taken on (and a shutdown waits for
 *    it) or refused with UNAVAILABLE and Retry-After while draining;
 *  - the deadline: a call whose deadline has passed does no work;
 *  - timing, and the request metrics with the same labels everywhere
 *    (transport, endpoint, model, arm, code);
 *  - one structured log line per call, with the stack of an INTERNAL error
 *    (which the client never sees);
 *  - the error normalisation: anything thrown becomes a ServiceError, whose
 *    code maps to an HTTP or gRPC status through the one table in core/errors.
 */
import { performance } from 'node:perf_hooks';
import type { Admission } from '../core/admission';
import { ServiceError } from '../core/errors';
import type { AppLogger } from '../core/logger';
import type { Transport } from '../core/types';
import type { ServiceMetrics } from '../monitoring/metrics';

/**
 * What a call is for. Work endpoints are admitted (a shutdown waits for
 * them) and counted in the request metrics; the others (probes, metadata,
 * admin) are logged only.
 */
export const ENDPOINTS = {
  classify: { work: true },
  classify_batch: { work: true },
  classify_stream: { work: true },
  feedback: { work: true },
  infer: { work: true },
  metadata: { work: false },
  health: { work: false },
  admin: { work: false },
  /** The OpenAPI rendering, the try-it page and their static files. */
  ui: { work: false },
  /** CORS preflights. */
  cors: { work: false },
  unknown: { work: false },
} as const;

export type Endpoint = keyof typeof ENDPOINTS;

export interface CallInfo {
  transport: Transport;
  endpoint: Endpoint;
  /** A client-supplied or generated id, logged with the call. */
  requestId?: string;
  /** Absolute deadline in ms since the epoch (gRPC deadlines); none when absent or infinite. */
  deadline?: number;
}

/** Which model and A/B arm answered; unknown ('') for calls that failed before a model was chosen. */
export interface Served {
  model: string;
  arm: string;
}

export interface PipelineDeps {
  admission: Admission;
  metrics: ServiceMetrics;
  log: AppLogger;
  /** Monotonic milliseconds, for durations (tests inject their own). */
  now?: () => number;
  /** Wall-clock milliseconds, for deadlines. */
  wallClock?: () => number;
}

/** One request in flight through the pipeline. */
export class Call {
  private served: Served | undefined;
  private finished = false;
  private readonly started: number;

  constructor(
    private readonly deps: Required<PipelineDeps>,
    readonly info: CallInfo,
    private readonly release: (() => void) | undefined,
    /** Set when admission refused the call (draining): answer with it, then finish. */
    readonly refused?: ServiceError,
  ) {
    this.started = deps.now();
  }

  /** Record which model and arm answered (from the result, once known). */
  serve(served: Served | undefined): void {
    if (served) this.served = served;
  }

  /** DEADLINE_EXCEEDED when the call's deadline has passed: no work is started for it. */
  checkDeadline(): void {
    const d = this.info.deadline;
    if (d !== undefined && Number.isFinite(d) && this.deps.wallClock() >= d) {
      throw new ServiceError('DEADLINE_EXCEEDED', 'the deadline passed before the request could start');
    }
  }

  /**
   * The call is answered (with `err` when it failed): release its
   * admission, count it, write its log line. Returns the normalised error.
   * Only the first call has an effect.
   */
  finish(err?: unknown, fields: Record<string, unknown> = {}): ServiceError | undefined {
    const e = err === undefined ? undefined : ServiceError.from(err);
    if (this.finished) return e;
    this.finished = true;
    this.release?.();
    const { transport, endpoint, requestId } = this.info;
    const code = e?.code ?? 'OK';
    const model = this.served?.model ?? '';
    const arm = this.served?.arm ?? '';
    const seconds = (this.deps.now() - this.started) / 1000;
    if (ENDPOINTS[endpoint].work) {
      this.deps.metrics.requests.inc({ transport, endpoint, model, arm, code });
      this.deps.metrics.requestDuration.observe({ transport, endpoint, arm, code }, seconds);
    }
    const line = {
      reqId: requestId,
      transport,
      endpoint,
      ...fields,
      model: model || undefined,
      arm: arm || undefined,
      code,
      ms: Math.round(seconds * 100_000) / 100,
    };
    if (e?.code === 'INTERNAL') {
      this.deps.log.error({ ...line, err: e.cause instanceof Error ? e.cause.stack : String(e.cause ?? e.message) }, 'request failed');
    } else {
      this.deps.log.info(line, 'request');
    }
    return e;
  }
}

export class RequestPipeline {
  private readonly deps: Required<PipelineDeps>;

  constructor(deps: PipelineDeps) {
    this.deps = { now: () => performance.now(), wallClock: () => Date.now(), ...deps };
  }

  get isDraining(): boolean {
    return this.deps.admission.isDraining;
  }

  /**
   * Start a call. Work endpoints are admitted here; a refused call carries
   * the refusal in `refused` and must still be finished with it.
   */
  begin(info: CallInfo): Call {
    if (!ENDPOINTS[info.endpoint].work) return new Call(this.deps, info, undefined);
    try {
      return new Call(this.deps, info, this.deps.admission.admit());
    } catch (err) {
      return new Call(this.deps, info, undefined, ServiceError.from(err));
    }
  }

  /**
   * The whole call: admit, check the deadline, do `work`, record who served
   * it, finish. Throws the normalised ServiceError for the transport to encode.
   */
  async run<T>(info: CallInfo, work: (call: Call) => Promise<T> | T, served?: (result: T) => Served | undefined): Promise<T> {
    const call = this.begin(info);
    if (call.refused) throw call.finish(call.refused)!;
    try {
      call.checkDeadline();
      const result = await work(call);
      call.serve(served?.(result));
      call.finish();
      return result;
    } catch (err) {
      throw call.finish(err)!;
    }
  }
}
