/**
 * The HTTP side of the pipeline. Every route starts its call with
 * `track(transport, endpoint)` as its first handler: for work endpoints the
 * request is admitted as soon as its headers are read, so a shutdown waits
 * for its body upload and its answer. The call finishes when the response
 * is written (or the client goes away), with the error the route answered
 * with, if any: one place counts and logs every HTTP request.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ServiceError } from '../../core/errors';
import type { Transport } from '../../core/types';
import type { Call, Endpoint, RequestPipeline, Served } from '../../pipeline/pipeline';

/** What a route answered with, kept on the response until its call finishes. */
interface CallLocals {
  call?: Call;
  error?: ServiceError;
  requestId?: string;
}

function locals(res: Response): CallLocals {
  return res.locals as CallLocals;
}

export function tracker(pipeline: RequestPipeline, refuse: (res: Response, err: ServiceError) => void) {
  return (transport: Transport, endpoint: Endpoint): RequestHandler =>
    (req: Request, res: Response, next: NextFunction) => {
      const call = pipeline.begin({ transport, endpoint, requestId: locals(res).requestId });
      locals(res).call = call;
      const fields = () => ({ method: req.method, path: req.path, status: res.statusCode });
      res.once('finish', () => call.finish(locals(res).error, fields()));
      // Every response closes; only one whose answer was never written finishes its call here
      // (no error object is built for the others, on the hot path).
      res.once('close', () => {
        if (!res.writableFinished)
          call.finish(locals(res).error ?? new ServiceError('CANCELLED', 'the client went away before the answer'), fields());
      });
      if (call.refused) {
        // Read the body out before refusing: closing a connection with an
        // upload still arriving resets it, and the client would see a reset
        // instead of this answer.
        req.resume();
        req.once('end', () => refuse(res, call.refused!));
        return;
      }
      next();
    };
}

/** Record the error a route answers with (the call is counted and logged with it). */
export function answeredWith(res: Response, err: ServiceError): void {
  locals(res).error = err;
}

/** Record which model and arm answered. */
export function servedBy(res: Response, served: Served | undefined): void {
  locals(res).call?.serve(served);
}
