/**
 * Bearer-token guard for /v1/admin routes. Without a configured token the
 * admin routes do not exist (404). Tokens are compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { ServiceError } from '../../core/errors';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function tokenMatches(expected: string, presented: string): boolean {
  // Hash both so the comparison takes the same time whatever the lengths.
  return timingSafeEqual(digest(expected), digest(presented));
}

export function adminAuth(token: string | undefined) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (!token) return next(new ServiceError('NOT_FOUND', 'admin routes are disabled (no ADMIN_TOKEN configured)'));
    const header = req.get('authorization') ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m || !tokenMatches(token, m[1])) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="product-classifier admin"');
      return next(new ServiceError('UNAUTHENTICATED', 'admin routes need a valid bearer token'));
    }
    next();
  };
}
