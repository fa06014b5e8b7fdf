/**
 * Routes registered with the methods they answer, so that any other method
 * on a known path gets 405 METHOD_NOT_ALLOWED with an `Allow` header instead
 * of a 404 that says the path does not exist.
 */
import type { Request, RequestHandler, Response, Router } from 'express';
import { ServiceError } from '../../core/errors';

type Method = 'get' | 'post' | 'put';
type Handlers = Array<RequestHandler | RequestHandler[]>;

export class MethodTable {
  private readonly allowed = new Map<string, Set<string>>();

  constructor(private readonly router: Router) {}

  get(path: string, ...handlers: Handlers): void {
    this.add('get', path, handlers);
  }

  post(path: string, ...handlers: Handlers): void {
    this.add('post', path, handlers);
  }

  put(path: string, ...handlers: Handlers): void {
    this.add('put', path, handlers);
  }

  /** After every route: each known path answers other methods with 405 and its `Allow` list. */
  refuseOtherMethods(before: RequestHandler, answer: (res: Response, err: ServiceError) => void): void {
    for (const [path, methods] of this.allowed) {
      const allow = [...methods, ...(methods.has('GET') ? ['HEAD'] : [])].join(', ');
      this.router.all(path, before, (req: Request, res: Response) => {
        res.setHeader('Allow', allow);
        answer(res, new ServiceError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${req.path}; allowed: ${allow}`));
      });
    }
  }

  private add(method: Method, path: string, handlers: Handlers): void {
    const set = this.allowed.get(path) ?? new Set<string>();
    set.add(method.toUpperCase());
    this.allowed.set(path, set);
    this.router[method](path, ...handlers.flat());
  }
}
