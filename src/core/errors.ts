/**
 * The service's one error type. Every failure a client can see is a
 * ServiceError with a stable code; HTTP and gRPC read their status from the
 * single table below, so the two transports cannot drift apart.
 */

/** gRPC status numbers (grpc/status.h), kept here so core does not import a transport. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/**
 * Code -> gRPC status and HTTP status. The gRPC canonical codes, plus two
 * that HTTP clients need told apart (413, 415); gRPC sees those as the
 * canonical code in `grpc`.
 */
export const CODE_TABLE = {
  INVALID_ARGUMENT: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 400 },
  PAYLOAD_TOO_LARGE: { grpc: GrpcStatus.RESOURCE_EXHAUSTED, http: 413 },
  UNSUPPORTED_MEDIA_TYPE: { grpc: GrpcStatus.INVALID_ARGUMENT, http: 415 },
  FAILED_PRECONDITION: { grpc: GrpcStatus.FAILED_PRECONDITION, http: 400 },
  OUT_OF_RANGE: { grpc: GrpcStatus.OUT_OF_RANGE, http: 400 },
  UNAUTHENTICATED: { grpc: GrpcStatus.UNAUTHENTICATED, http: 401 },
  PERMISSION_DENIED: { grpc: GrpcStatus.PERMISSION_DENIED, http: 403 },
  NOT_FOUND: { grpc: GrpcStatus.NOT_FOUND, http: 404 },
  METHOD_NOT_ALLOWED: { grpc: GrpcStatus.UNIMPLEMENTED, http: 405 },
  ALREADY_EXISTS: { grpc: GrpcStatus.ALREADY_EXISTS, http: 409 },
  ABORTED: { grpc: GrpcStatus.ABORTED, http: 409 },
  RESOURCE_EXHAUSTED: { grpc: GrpcStatus.RESOURCE_EXHAUSTED, http: 503 },
  CANCELLED: { grpc: GrpcStatus.CANCELLED, http: 499 },
  DEADLINE_EXCEEDED: { grpc: GrpcStatus.DEADLINE_EXCEEDED, http: 504 },
  UNIMPLEMENTED: { grpc: GrpcStatus.UNIMPLEMENTED, http: 501 },
  UNAVAILABLE: { grpc: GrpcStatus.UNAVAILABLE, http: 503 },
  INTERNAL: { grpc: GrpcStatus.INTERNAL, http: 500 },
  UNKNOWN: { grpc: GrpcStatus.UNKNOWN, http: 500 },
  DATA_LOSS: { grpc: GrpcStatus.DATA_LOSS, http: 500 },
} as const;

export type ErrorCode = keyof typeof CODE_TABLE;

export class ServiceError extends Error {
  readonly code: ErrorCode;
  /** Seconds a client should wait before retrying (overload, draining). */
  readonly retryAfterSeconds?: number;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; retryAfterSeconds?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ServiceError';
    this.code = code;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }

  get httpStatus(): number {
    return CODE_TABLE[this.code].http;
  }

  get grpcStatus(): number {
    return CODE_TABLE[this.code].grpc;
  }

  /**
   * Normalise anything thrown into a ServiceError. Unknown errors become
   * INTERNAL with a generic message: internals never reach a client.
   */
  static from(err: unknown): ServiceError {
    if (err instanceof ServiceError) return err;
    return new ServiceError('INTERNAL', 'internal error', { cause: err });
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export const invalid = (message: string): ServiceError => new ServiceError('INVALID_ARGUMENT', message);
