/**
 * The HTTP transport (express 5 + multer): parse, call the DataPlane,
 * serialize. No request rule lives here.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import express, { type NextFunction, type Request, type Response } from 'express';
import multer from 'multer';
import type { DataPlane } from '../../core/dataplane';
import { ServiceError } from '../../core/errors';
import type { AppLogger } from '../../core/logger';
import type { ImageInput } from '../../core/types';
import { RoutingConfigError } from '../../routing/router';
import type { RoutingSource } from '../../routing/routing-source';
import { adminAuth } from './admin-auth';
import { errorMiddleware, fromHttpLayer, sendError } from './errors';
import { oipRouter } from './oip-routes';
import { imageFromJson, optionsFrom, requireJsonObject, unsupportedContentType } from './parse';

export interface HttpOptions {
  maxImageBytes: number;
  maxBatchImages: number;
  maxJsonBytes: number;
  adminToken?: string;
  serverName: string;
  serverVersion: string;
}

export interface AdminActions {
  reload(): Promise<unknown>;
  routing: Pick<RoutingSource, 'apply' | 'status'>;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** The routes counted in classifier_requests_total (probes and metadata are not). */
const COUNTED_ROUTES = /^(?:\/v1\/(?:classify|classify\/batch|feedback)|(\/v2\/models\/[^/]+(?:\/versions\/[^/]+)?\/infer))$/;

export function createHttpApp(dataplane: DataPlane, admin: AdminActions, opts: HttpOptions, log: AppLogger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  // While draining, every response asks the client to close its connection,
  // so that when the listener closes no keep-alive connection is left idle
  // with a request of the client's about to cross. app.response is this
  // app's own prototype of res: one check per response, nothing allocated.
  const writeHead = app.response.writeHead;
  app.response.writeHead = function (this: Response, ...args: Parameters<Response['writeHead']>) {
    if (dataplane.isDraining) this.setHeader('Connection', 'close');
    return writeHead.apply(this, args);
  } as Response['writeHead'];

  app.use((req: Request, res: Response, next: NextFunction) => {
    const incoming = req.get('x-request-id');
    const id = incoming && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.locals.requestId = id;
    res.setHeader('X-Request-Id', id);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');
    const start = performance.now();
    const counted = COUNTED_ROUTES.exec(req.path);
    res.on('finish', () => {
      if (counted) {
        const code = res.locals.errorCode ?? (res.statusCode < 400 ? 'OK' : `HTTP_${res.statusCode}`);
        dataplane.recordRequest(
          counted[1] ? 'oip-http' : 'http',
          (performance.now() - start) / 1000,
          code,
          res.locals.model ?? '',
          res.locals.arm ?? '',
        );
      }
      // One line per request; never the body.
      log.info(
        {
          reqId: id,
          method: req.method,
          path: req.path,
          status: res.statusCode,
          ms: Math.round((performance.now() - start) * 100) / 100,
          model: res.locals.model,
          arm: res.locals.arm,
          code: res.locals.errorCode,
        },
        'request',
      );
    });
    if (counted) {
      // A request that does work is admitted now, with its headers read: a
      // shutdown from here on waits for its answer (body upload included).
      let release: () => void;
      try {
        release = dataplane.admit();
      } catch (err) {
        // Read the body out before refusing: closing a connection with an
        // upload still arriving resets it, and the client would see a reset
        // instead of this answer.
        req.resume();
        req.once('end', () => sendError(res, ServiceError.from(err)));
        return;
      }
      res.once('close', release);
    }
    next();
  });

  const json = express.json({ limit: opts.maxJsonBytes, strict: true });
  // Field names are plain (model, version, topK, routingKey): no `a[b]` nesting and no
  // `a[4294967294]` indexes, which would make multer build huge sparse arrays (GHSA-535w-7cp7-47q4).
  const limits = {
    fileSize: opts.maxImageBytes,
    fields: 20,
    fieldSize: 64 * 1024,
    parts: opts.maxBatchImages + 20,
    headerPairs: 200,
    fieldNestingDepth: 0,
    fieldArrayIndexLimit: 0,
  };
  const single = multer({ storage: multer.memoryStorage(), limits: { ...limits, files: 1 } }).single('image');
  const many = multer({ storage: multer.memoryStorage(), limits: { ...limits, files: opts.maxBatchImages } }).fields([
    { name: 'images', maxCount: opts.maxBatchImages },
    { name: 'image', maxCount: opts.maxBatchImages },
  ]);

  /** Run the body parser that fits the content type; refuse any other. */
  const parseBody = (multipart: express.RequestHandler) => (req: Request, res: Response, next: NextFunction) => {
    if (req.is('multipart/form-data')) return multipart(req, res, next);
    if (req.is('application/json')) return json(req, res, next);
    next(unsupportedContentType(req.get('content-type')));
  };

  const markModel = (res: Response, r: { model: string; version: string; arm: string }) => {
    res.locals.model = r.model;
    res.locals.arm = r.arm;
    res.setHeader('X-Model-Arm', r.arm);
    res.setHeader('X-Model-Name', r.model);
    res.setHeader('X-Model-Version', r.version);
  };

  app.post('/v1/classify', parseBody(single), async (req: Request, res: Response) => {
    let image: ImageInput;
    let body: Record<string, unknown> | undefined;
    if (req.is('multipart/form-data')) {
      if (!req.file) throw new ServiceError('INVALID_ARGUMENT', 'multipart body needs a file in the "image" field');
      image = { kind: 'encoded', bytes: req.file.buffer };
      body = req.body as Record<string, unknown>;
    } else {
      body = requireJsonObject(req.body);
      image = imageFromJson(body, 'body');
    }
    const result = await dataplane.classify(image, { ...optionsFrom(body, req.query, req.get('x-routing-key')), transport: 'http' });
    markModel(res, result);
    res.json(result);
  });

  app.post('/v1/classify/batch', parseBody(many), async (req: Request, res: Response) => {
    let images: ImageInput[];
    let body: Record<string, unknown> | undefined;
    if (req.is('multipart/form-data')) {
      const files = req.files as Record<string, Express.Multer.File[]> | undefined;
      const all = [...(files?.images ?? []), ...(files?.image ?? [])];
      if (all.length === 0) throw new ServiceError('INVALID_ARGUMENT', 'multipart body needs files in the "images" field');
      images = all.map((f) => ({ kind: 'encoded', bytes: f.buffer }));
      body = req.body as Record<string, unknown>;
    } else {
      body = requireJsonObject(req.body);
      if (!Array.isArray(body.images))
        throw new ServiceError('INVALID_ARGUMENT', 'body.images must be an array of {"image": base64} or {"pixels": [...]}');
      if (body.images.length > opts.maxBatchImages) {
        throw new ServiceError('INVALID_ARGUMENT', `a batch holds at most ${opts.maxBatchImages} images; got ${body.images.length}`);
      }
      images = body.images.map((item, i) => imageFromJson(item, `images[${i}]`));
    }
    const results = await dataplane.classifyBatch(images, { ...optionsFrom(body, req.query, req.get('x-routing-key')), transport: 'http' });
    const first = results.find((r): r is Extract<typeof r, { model: string }> => 'model' in r);
    if (first) markModel(res, first);
    res.json({ results });
  });

  app.post(
    '/v1/feedback',
    (req: Request, res: Response, next: NextFunction) => {
      if (req.is('application/json')) return json(req, res, next);
      next(unsupportedContentType(req.get('content-type')));
    },
    async (req: Request, res: Response) => {
      const body = requireJsonObject(req.body);
      const label = body.label !== undefined ? body.label : body.labelIndex;
      const result = await dataplane.feedback({ predictionId: body.predictionId, label, transport: 'http' });
      res.locals.model = result.model;
      res.locals.arm = result.arm;
      res.json(result);
    },
  );

  app.get('/v1/ab', (_req: Request, res: Response) => {
    res.json(dataplane.monitoringReport());
  });

  app.get('/v1/models', (_req: Request, res: Response) => {
    res.json(dataplane.models());
  });

  app.get('/healthz', (_req: Request, res: Response) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', (_req: Request, res: Response) => {
    const r = dataplane.readiness();
    res.status(r.ready ? 200 : 503).json(r);
  });

  app.post('/v1/admin/models/reload', adminAuth(opts.adminToken), async (_req: Request, res: Response) => {
    const report = (await admin.reload()) as { failed?: unknown[] };
    res.json({ ok: (report.failed?.length ?? 0) === 0, ...report });
  });

  app.get('/v1/admin/routing', adminAuth(opts.adminToken), (_req: Request, res: Response) => {
    res.json(admin.routing.status());
  });

  // Set the A/B config on this instance only (the file or ConfigMap is the fleet-wide source).
  app.put('/v1/admin/routing', adminAuth(opts.adminToken), json, (req: Request, res: Response) => {
    try {
      admin.routing.apply(req.body, 'admin');
    } catch (err) {
      if (err instanceof RoutingConfigError) throw new ServiceError('INVALID_ARGUMENT', `routing config refused: ${err.message}`);
      throw err;
    }
    res.json(admin.routing.status());
  });

  app.use(
    oipRouter(dataplane, {
      serverName: opts.serverName,
      serverVersion: opts.serverVersion,
      json: (req, res, next) => json(req, res, (err?: unknown) => next(err === undefined ? undefined : fromHttpLayer(err, opts))),
      unsupported: unsupportedContentType,
    }),
  );

  app.use((req: Request, res: Response) => {
    sendError(res, new ServiceError('NOT_FOUND', `no route ${req.method} ${req.path}`));
  });

  app.use(
    errorMiddleware(opts, (err, req) =>
      log.error(
        { reqId: req.res?.locals.requestId, err: err.cause instanceof Error ? err.cause.stack : String(err.cause) },
        'internal error',
      ),
    ),
  );
  return app;
}
