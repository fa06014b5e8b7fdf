/**
 * The gRPC side of the pipeline: a unary handler runs through the
 * RequestPipeline (admission, deadline, metrics, log line, error
 * normalisation) and answers with its result or its mapped status.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { ServiceError } from '../../core/errors';
import { requestIdFrom } from '../../core/rules';
import type { Transport } from '../../core/types';
import type { CallInfo, Endpoint, RequestPipeline, Served } from '../../pipeline/pipeline';

/** The status object grpc-js sends; `x-error-code` carries the finer service code. */
export function toGrpcError(err: unknown): Partial<grpc.StatusObject> & { code: grpc.status; details: string } {
  const e = ServiceError.from(err);
  const metadata = new grpc.Metadata();
  metadata.set('x-error-code', e.code);
  if (e.retryAfterSeconds !== undefined) metadata.set('retry-after', String(e.retryAfterSeconds));
  return { code: e.grpcStatus as grpc.status, details: e.message, metadata };
}

/** The pipeline's view of a gRPC call: transport, endpoint, request id (x-request-id metadata) and deadline. */
export function callInfo(
  call: Pick<grpc.ServerUnaryCall<unknown, unknown>, 'metadata' | 'getDeadline'>,
  transport: Transport,
  endpoint: Endpoint,
): CallInfo {
  const incoming = call.metadata.get('x-request-id')[0];
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return {
    transport,
    endpoint,
    requestId: requestIdFrom(typeof incoming === 'string' ? incoming : undefined, randomUUID),
    deadline: Number.isFinite(ms) ? ms : undefined,
  };
}

export interface UnaryRoute<Req, T, Res> {
  transport: Transport;
  endpoint: Endpoint;
  /** The work, on the decoded request. */
  work: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<T> | T;
  /** The answer message. */
  encode: (result: T, request: Req) => Res;
  /** Which model and arm answered, for the metrics and the log line. */
  served?: (result: T) => Served | undefined;
}

export function unary<Req, T, Res>(pipeline: RequestPipeline, route: UnaryRoute<Req, T, Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    pipeline
      .run(
        callInfo(call, route.transport, route.endpoint),
        () => {
          if (call.cancelled) throw new ServiceError('CANCELLED', 'the client cancelled the call');
          return route.work(call.request, call);
        },
        route.served,
      )
      .then(
        (result) => callback(null, route.encode(result, call.request)),
        (err) => callback(toGrpcError(err)),
      );
  };
}
