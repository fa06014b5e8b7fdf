import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CODE_TABLE, GrpcStatus, ServiceError } from '../../src/core/errors';

describe('ServiceError', () => {
  it('reads HTTP and gRPC status from the one table', () => {
    const e = new ServiceError('NOT_FOUND', 'no such model');
    assert.equal(e.httpStatus, 404);
    assert.equal(e.grpcStatus, GrpcStatus.NOT_FOUND);
    assert.equal(new ServiceError('PAYLOAD_TOO_LARGE', 'x').httpStatus, 413);
    assert.equal(new ServiceError('PAYLOAD_TOO_LARGE', 'x').grpcStatus, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.equal(new ServiceError('UNSUPPORTED_MEDIA_TYPE', 'x').grpcStatus, GrpcStatus.INVALID_ARGUMENT);
  });

  it('maps every code to a 4xx/5xx status and a gRPC status', () => {
    for (const [code, { http, grpc }] of Object.entries(CODE_TABLE)) {
      assert.ok(http >= 400 && http < 600, code);
      assert.ok(grpc > 0 && grpc <= 16, code);
    }
  });

  it('turns unknown errors into INTERNAL without leaking their message', () => {
    const e = ServiceError.from(new Error('ENOENT /secret/path/model.onnx'));
    assert.equal(e.code, 'INTERNAL');
    assert.equal(e.message, 'internal error');
    assert.deepEqual(e.toJSON(), { code: 'INTERNAL', message: 'internal error' });
  });
});
