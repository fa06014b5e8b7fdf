/**
 * Cross-origin calls from browsers, opt in (CORS_ORIGINS). Off, nothing is
 * added and a preflight is an ordinary OPTIONS request (405 on a known
 * path). On, a request from a listed origin gets that origin back with the
 * response headers a caller reads exposed, and a preflight from it is
 * answered here with 204. No credentials: the API uses no cookies, and the
 * admin routes take a bearer token in the Authorization header.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ServiceError } from '../../core/errors';

/** What a browser may send: the API's methods and request headers. */
export const CORS_METHODS = 'GET, POST, PUT';
export const CORS_REQUEST_HEADERS = 'Content-Type, Authorization, X-Request-Id, X-Routing-Key, Inference-Header-Content-Length';
/** What a browser may read beyond the CORS-safelisted response headers. */
export const CORS_EXPOSED_HEADERS =
  'X-Request-Id, X-Model-Name, X-Model-Version, X-Model-Arm, Retry-After, Inference-Header-Content-Length';
/** How long a browser may reuse a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE_S = 600;

export function isPreflight(req: Request): boolean {
  return req.method === 'OPTIONS' && req.get('origin') !== undefined && req.get('access-control-request-method') !== undefined;
}

/**
 * The CORS middleware for `origins` (`['*']` for any), or undefined when the
 * list is empty. A preflight from an origin not listed is refused with 403.
 */
export function cors(origins: readonly string[], refuse: (res: Response, err: ServiceError) => void): RequestHandler | undefined {
  if (origins.length === 0) return undefined;
  const any = origins.includes('*');
  const allowed = new Set(origins);
  return (req: Request, res: Response, next: NextFunction) => {
    // With a list of origins the answer depends on Origin, also when there is none:
    // a shared cache must not hand a copy without the CORS header to a listed origin.
    if (!any) res.vary('Origin');
    const origin = req.get('origin');
    if (origin === undefined) return next();
    const ok = any || allowed.has(origin);
    if (ok) {
      res.setHeader('Access-Control-Allow-Origin', any ? '*' : origin);
      res.setHeader('Access-Control-Expose-Headers', CORS_EXPOSED_HEADERS);
    }
    if (!isPreflight(req)) return next();
    if (!ok) return refuse(res, new ServiceError('PERMISSION_DENIED', `origin ${origin} is not allowed by CORS_ORIGINS`));
    res.setHeader('Access-Control-Allow-Methods', CORS_METHODS);
    res.setHeader('Access-Control-Allow-Headers', CORS_REQUEST_HEADERS);
    res.setHeader('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_S));
    res.status(204).end();
  };
}
