/** ServiceError -> gRPC status, from the single code table in core/errors. */
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { ServiceError } from '../../core/errors';

/** The status object grpc-js sends; `x-error-code` carries the finer service code. */
export function toGrpcError(err: unknown): Partial<grpc.StatusObject> & { code: grpc.status; details: string } {
  const e = ServiceError.from(err);
  const metadata = new grpc.Metadata();
  metadata.set('x-error-code', e.code);
  if (e.retryAfterSeconds !== undefined) metadata.set('retry-after', String(e.retryAfterSeconds));
  return { code: e.grpcStatus as grpc.status, details: e.message, metadata };
}

/** Counts an answered call: its code and, when it succeeded, its result. */
export type CallRecorder<Res> = (code: string, seconds: number, result?: Res) => void;

/** Run a unary handler body and answer with its result or its mapped error. */
export function unary<Req, Res>(
  handler: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
  onInternal: (err: ServiceError) => void,
  record?: CallRecorder<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    if (call.cancelled) return; // deadline passed or client gone: do no work
    const t0 = performance.now();
    handler(call.request, call).then(
      (res) => {
        record?.('OK', (performance.now() - t0) / 1000, res);
        callback(null, res);
      },
      (err) => {
        const e = ServiceError.from(err);
        if (e.code === 'INTERNAL') onInternal(e);
        record?.(e.code, (performance.now() - t0) / 1000);
        callback(toGrpcError(e));
      },
    );
  };
}

/**
 * A handler that does work for a client runs only once the service admits
 * the call (refused with UNAVAILABLE while draining) and stays counted until
 * it settles, so a shutdown waits for it.
 */
export function admitted<Req, Res>(
  service: { admit(): () => void },
  handler: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
): (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> {
  return async (request, call) => {
    const release = service.admit();
    try {
      return await handler(request, call);
    } finally {
      release();
    }
  };
}
