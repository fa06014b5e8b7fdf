/**
 * The HTTP transport (express 5 + multer): decode the request, call the
 * DataPlane through the request pipeline, encode the answer. No request
 * rule lives here.
 */
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import multer from 'multer';
import type { DataPlane } from '../../core/dataplane';
import { invalid, ServiceError } from '../../core/errors';
import { checkImageCount, checkKnownFields, OPTION_FIELDS, requestIdFrom, tooManyImages } from '../../core/rules';
import type { BatchItem, Classification, ImageInput } from '../../core/types';
import type { RequestPipeline } from '../../pipeline/pipeline';
import { RoutingConfigError } from '../../routing/router';
import type { RoutingSource } from '../../routing/routing-source';
import type { OipService } from '../oip/service';
import { adminAuth } from './admin-auth';
import { cors, isPreflight } from './cors';
import { BodyReader } from './body';
import { errorMiddleware, type HttpLimits, sendError } from './errors';
import { MethodTable } from './methods';
import { oipRouter, sendOipError } from './oip-routes';
import {
  declares,
  EMPTY_JSON_BODY,
  hasBody,
  imageFromJson,
  MULTIPART_OR_JSON,
  type OptionSources,
  optionsFrom,
  rawImages,
  requireJsonObject,
  unsupportedContentType,
} from './parse';
import { servedBy, tracker } from './pipeline';
import { sendJson } from './respond';
import { installUi, type UiOptions } from './ui';

export interface HttpOptions extends HttpLimits {
  /** Images in one request (CLASSIFY_MAX_IMAGES). */
  maxImages: number;
  adminToken?: string;
  /** Browser origins allowed to call the API (CORS_ORIGINS); empty: no CORS. */
  corsOrigins: readonly string[];
  /** The OpenAPI document, /docs and the try-it page. */
  ui: UiOptions;
}

export interface AdminActions {
  reload(): Promise<unknown>;
  routing: Pick<RoutingSource, 'apply' | 'status'>;
}

export function createHttpApp(
  dataplane: DataPlane,
  oip: OipService,
  pipeline: RequestPipeline,
  admin: AdminActions,
  opts: HttpOptions,
): express.Express {
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
    if (pipeline.isDraining) this.setHeader('Connection', 'close');
    return writeHead.apply(this, args);
  } as Response['writeHead'];

  app.use((req: Request, res: Response, next: NextFunction) => {
    const id = requestIdFrom(req.get('x-request-id'), randomUUID);
    res.locals.requestId = id;
    res.setHeader('X-Request-Id', id);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');
    next();
  });
  const track = tracker(pipeline, sendError);
  const routes = new MethodTable(app.router);

  const crossOrigin = cors(opts.corsOrigins, sendError);
  if (crossOrigin) {
    const preflight = track('http', 'cors');
    app.use((req: Request, res: Response, next: NextFunction) =>
      isPreflight(req) ? preflight(req, res, () => crossOrigin(req, res, next)) : crossOrigin(req, res, next),
    );
  }

  const parseJson = express.json({ limit: opts.maxJsonBytes, strict: true });
  /** The JSON body parser; a request declaring JSON with no body at all is a bad request, not an empty object. */
  const json: express.RequestHandler = (req, res, next) =>
    hasBody(req.headers) ? parseJson(req, res, next) : next(invalid(EMPTY_JSON_BODY));
  // Field names are plain (model, version, topK, routingKey): no `a[b]` nesting and no
  // `a[4294967294]` indexes, which would make multer build huge sparse arrays (GHSA-535w-7cp7-47q4).
  const limits = {
    fileSize: opts.maxImageBytes,
    fields: 20,
    fieldSize: 64 * 1024,
    parts: opts.maxImages + 20,
    headerPairs: 200,
    fieldNestingDepth: 0,
    fieldArrayIndexLimit: 0,
  };
  /** A multipart parser whose file-count overflow answers with the request's own image limit. */
  const withFileLimit =
    (handler: express.RequestHandler, max: number): express.RequestHandler =>
    (req, res, next) =>
      handler(req, res, (err?: unknown) =>
        next(err instanceof multer.MulterError && err.code === 'LIMIT_FILE_COUNT' ? tooManyImages(max) : err),
      );
  const single = withFileLimit(multer({ storage: multer.memoryStorage(), limits: { ...limits, files: 1 } }).single('image'), 1);
  const many = withFileLimit(
    multer({ storage: multer.memoryStorage(), limits: { ...limits, files: opts.maxImages } }).fields([
      { name: 'images', maxCount: opts.maxImages },
      { name: 'image', maxCount: opts.maxImages },
    ]),
    opts.maxImages,
  );

  /** The classify routes' own body reader (JSON, raw pixels): no generic body parser on the hot path. */
  const body = new BodyReader(opts);
  const CLASSIFY_TYPES = `${MULTIPART_OR_JSON}, or application/octet-stream (raw 28x28 grayscale pixels, image after image)`;
  /** Multipart goes to multer; JSON and raw pixels are read by the route; any other type is refused. */
  const parseBody = (multipart: express.RequestHandler) => (req: Request, res: Response, next: NextFunction) => {
    const type = req.get('content-type');
    if (declares(type, 'multipart/form-data')) return multipart(req, res, next);
    if (declares(type, 'application/json') || declares(type, 'application/octet-stream')) return next();
    next(unsupportedContentType(type, CLASSIFY_TYPES));
  };

  /** The model that answered: in the call's metrics and log line, and in the response headers. */
  const markModel = (res: Response, r: Classification | undefined) => {
    if (!r) return;
    servedBy(res, r);
    res.setHeader('X-Model-Arm', r.arm);
    res.setHeader('X-Model-Name', r.model);
    res.setHeader('X-Model-Version', r.version);
  };

  routes.post('/v1/classify', track('http', 'classify'), parseBody(single), async (req: Request, res: Response) => {
    let image: ImageInput;
    let sources: OptionSources;
    const type = req.get('content-type');
    if (declares(type, 'multipart/form-data')) {
      if (!req.file) throw invalid('multipart body needs a file in the "image" field');
      image = { kind: 'encoded', bytes: req.file.buffer };
      sources = { form: req.body as Record<string, unknown>, query: req.query };
    } else if (declares(type, 'application/octet-stream')) {
      // 784 raw pixels; the options come from the query string.
      image = { kind: 'pixels', pixels: await body.bytes(req, res) };
      sources = { query: req.query };
    } else {
      const json = requireJsonObject(await body.json(req, res, true));
      image = imageFromJson(json, 'the body', OPTION_FIELDS);
      sources = { json, query: req.query };
    }
    const result = await dataplane.classify(image, optionsFrom(sources, req.get('x-routing-key')));
    markModel(res, result);
    sendJson(res, result);
  });

  routes.post('/v1/classify/batch', track('http', 'classify_batch'), parseBody(many), async (req: Request, res: Response) => {
    let images: ImageInput[];
    let sources: OptionSources;
    const type = req.get('content-type');
    if (declares(type, 'multipart/form-data')) {
      const files = req.files as Record<string, Express.Multer.File[]> | undefined;
      const all = [...(files?.images ?? []), ...(files?.image ?? [])];
      if (all.length === 0) throw invalid('multipart body needs files in the "images" field');
      images = all.map((f) => ({ kind: 'encoded', bytes: f.buffer }));
      sources = { form: req.body as Record<string, unknown>, query: req.query };
    } else if (declares(type, 'application/octet-stream')) {
      // Raw 28x28 images, one after another; the options come from the query string.
      images = rawImages(await body.bytes(req, res));
      checkImageCount(images.length, opts.maxImages);
      sources = { query: req.query };
    } else {
      const json = requireJsonObject(await body.json(req, res, true));
      checkKnownFields(json, ['images', ...OPTION_FIELDS], 'the body');
      sources = { json, query: req.query };
      if (!Array.isArray(json.images)) throw invalid('body.images must be an array of {"image": base64} or {"pixels": [...]}');
      // Counted before decoding, so an oversized list is refused before its images are read.
      checkImageCount(json.images.length, opts.maxImages);
      images = json.images.map((item, i) => imageFromJson(item, `images[${i}]`, []));
    }
    const results = await dataplane.classifyBatch(images, optionsFrom(sources, req.get('x-routing-key')));
    markModel(
      res,
      results.find((r: BatchItem): r is Classification => 'model' in r),
    );
    sendJson(res, { results });
  });

  routes.post(
    '/v1/feedback',
    track('http', 'feedback'),
    (req: Request, res: Response, next: NextFunction) => {
      if (declares(req.get('content-type'), 'application/json')) return json(req, res, next);
      next(unsupportedContentType(req.get('content-type')));
    },
    async (req: Request, res: Response) => {
      const body = requireJsonObject(req.body);
      checkKnownFields(body, ['predictionId', 'label', 'labelIndex'], 'the body');
      const label = body.label !== undefined ? body.label : body.labelIndex;
      const result = await dataplane.feedback({ predictionId: body.predictionId, label });
      servedBy(res, result);
      res.json(result);
    },
  );

  routes.get('/v1/ab', track('http', 'metadata'), (_req: Request, res: Response) => {
    res.json(dataplane.monitoringReport());
  });

  routes.get('/v1/models', track('http', 'metadata'), (_req: Request, res: Response) => {
    res.json(dataplane.models());
  });

  routes.get('/healthz', track('http', 'health'), (_req: Request, res: Response) => {
    res.json({ status: 'ok' });
  });

  routes.get('/readyz', track('http', 'health'), (_req: Request, res: Response) => {
    const r = dataplane.readiness();
    res.status(r.ready ? 200 : 503).json(r);
  });

  const guard = adminAuth(opts.adminToken);
  routes.post('/v1/admin/models/reload', track('http', 'admin'), guard, async (_req: Request, res: Response) => {
    const report = (await admin.reload()) as { failed?: unknown[] };
    res.json({ ok: (report.failed?.length ?? 0) === 0, ...report });
  });

  routes.get('/v1/admin/routing', track('http', 'admin'), guard, (_req: Request, res: Response) => {
    res.json(admin.routing.status());
  });

  // Set the A/B config on this instance only (the file or ConfigMap is the fleet-wide source).
  routes.put('/v1/admin/routing', track('http', 'admin'), guard, json, (req: Request, res: Response) => {
    try {
      admin.routing.apply(req.body, 'admin');
    } catch (err) {
      if (err instanceof RoutingConfigError) throw invalid(`routing config refused: ${err.message}`);
      throw err;
    }
    res.json(admin.routing.status());
  });

  installUi(routes, dataplane, opts.ui, track('http', 'ui'), track('http', 'metadata'));

  routes.refuseOtherMethods(track('http', 'unknown'), sendError);

  // OIP calls refused at admission (draining) answer in OIP's error form too.
  const trackOip = tracker(pipeline, sendOipError);
  app.use(
    oipRouter(dataplane, oip, {
      track: (endpoint) => trackOip('oip-http', endpoint),
      body,
    }),
  );

  app.use(track('http', 'unknown'), (req: Request, res: Response) => {
    sendError(res, new ServiceError('NOT_FOUND', `no route ${req.method} ${req.path}`));
  });

  app.use(errorMiddleware(opts));
  return app;
}
