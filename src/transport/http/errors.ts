/** Map what express, body-parser and multer throw onto ServiceErrors, and write error bodies. */
import type { NextFunction, Request, Response } from 'express';
import multer from 'multer';
import { ServiceError } from '../../core/errors';
import { imageTooLarge } from '../../core/rules';
import { answeredWith } from './pipeline';

/** The byte limits the HTTP body parsers enforce, for their error messages. */
export interface HttpLimits {
  maxImageBytes: number;
  maxJsonBytes: number;
}

/** The one wording of the body limit (MAX_JSON_BYTES), from the service's own reader or body-parser. */
export function bodyTooLarge(maxJsonBytes: number): ServiceError {
  return new ServiceError('PAYLOAD_TOO_LARGE', `request body is larger than the limit of ${maxJsonBytes} bytes`);
}

export function fromHttpLayer(err: unknown, limits: HttpLimits): ServiceError {
  if (err instanceof ServiceError) return err;
  if (err instanceof multer.MulterError) {
    switch (
      err.code as string // multer 2.5 has codes its types do not list yet (LIMIT_FIELD_NESTING, LIMIT_FIELD_ARRAY_INDEX)
    ) {
      case 'LIMIT_FILE_SIZE':
        return imageTooLarge(limits.maxImageBytes);
      case 'LIMIT_UNEXPECTED_FILE':
        return new ServiceError(
          'INVALID_ARGUMENT',
          `unexpected file field "${err.field}"; send images in the "image" (or, for batches, "images") field`,
        );
      case 'LIMIT_FIELD_NESTING':
      case 'LIMIT_FIELD_ARRAY_INDEX':
        return new ServiceError(
          'INVALID_ARGUMENT',
          `form field names are plain words (model, version, topK, routingKey); "${String(err.field).slice(0, 64)}" is not`,
        );
      case 'LIMIT_FIELD_COUNT':
      case 'LIMIT_FIELD_KEY':
      case 'LIMIT_FIELD_VALUE':
      case 'LIMIT_PART_COUNT':
        return new ServiceError('INVALID_ARGUMENT', `multipart form too large: ${err.message}`);
      default:
        return new ServiceError('INVALID_ARGUMENT', `malformed multipart body: ${err.message}`);
    }
  }
  const e = err as { type?: string; status?: number; message?: string };
  if (e && typeof e === 'object') {
    if (e.type === 'entity.too.large') return bodyTooLarge(limits.maxJsonBytes);
    if (e.type === 'entity.parse.failed') return new ServiceError('INVALID_ARGUMENT', 'request body is not valid JSON');
    if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported')
      return new ServiceError('UNSUPPORTED_MEDIA_TYPE', e.message ?? 'unsupported encoding');
    if (e.type === 'request.aborted') return new ServiceError('CANCELLED', 'request aborted by the client');
    if (typeof e.message === 'string' && /^(Multipart: Boundary not found|Unexpected end of form|Malformed part header)/.test(e.message)) {
      return new ServiceError('INVALID_ARGUMENT', `malformed multipart body: ${e.message}`);
    }
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) return new ServiceError('INVALID_ARGUMENT', 'bad request');
  }
  return ServiceError.from(err);
}

export function sendError(res: Response, err: ServiceError): void {
  if (res.headersSent) return;
  if (err.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(err.retryAfterSeconds));
  answeredWith(res, err);
  res.status(err.httpStatus).json({ error: { code: err.code, message: err.message, requestId: res.locals.requestId } });
}

/** The last handler: whatever a route threw, mapped and answered (its call logs an INTERNAL error's stack). */
export function errorMiddleware(limits: HttpLimits) {
  return (err: unknown, _req: Request, res: Response, _next: NextFunction): void => {
    sendError(res, fromHttpLayer(err, limits));
  };
}
