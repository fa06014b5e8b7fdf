/**
 * The pages a person opens in a browser: the OpenAPI document
 * (`/openapi.json`), its Swagger UI rendering (`/docs`), and the try-it page
 * (`/`, off with TRY_IT_PAGE=off) with the files it loads: its own bundle,
 * TF.js, and the TF.js artifacts of the loaded models so the page can run a
 * model in the browser. Everything is served from this installation (the
 * built web/ bundle, node_modules, the model directory): no CDN, works
 * offline. Static files are cached by the browser and revalidated by
 * Last-Modified (the app turns ETags off: hashing every JSON answer costs
 * the hot path). Range requests are not served: the files are small.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Request, RequestHandler, Response } from 'express';
import type { DataPlane } from '../../core/dataplane';
import { ServiceError } from '../../core/errors';
import type { MethodTable } from './methods';

/** Where the files come from; the defaults are this installation's. */
export interface UiFiles {
  /** The OpenAPI document. */
  openapi: string;
  /** The built web/ bundle (scripts/build-web.mjs). */
  web: string;
  /** swagger-ui-dist's directory. */
  swaggerUi: string;
  /** TF.js's browser bundle. */
  tfjs: string;
}

const ROOT = path.resolve(__dirname, '../../../..');

export function installedUiFiles(): UiFiles {
  return {
    openapi: path.join(ROOT, 'api', 'openapi.json'),
    web: path.join(ROOT, 'dist', 'web'),
    swaggerUi: path.dirname(require.resolve('swagger-ui-dist/package.json')),
    tfjs: require.resolve('@tensorflow/tfjs/dist/tf.min.js'),
  };
}

export interface UiOptions {
  tryItPage: boolean;
  files: UiFiles;
}

/** The pages' policy: their own scripts only (no inline script, no eval); Swagger UI styles elements inline. */
const PAGE_CSP =
  "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";
/** Bundles of an installed package change only with the install: a day, then revalidate. */
const VENDOR_MAX_AGE_MS = 24 * 3600 * 1000;
/** The project's own pages and bundles, and model files (a reload may replace them): revalidate each use. */
const OWN_MAX_AGE_MS = 0;
/** A file name in a static directory: no path separators, no leading dot. */
const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

type Track = RequestHandler;

export function installUi(routes: MethodTable, dataplane: DataPlane, opts: UiOptions, track: Track, metadata: Track): void {
  const openapi = readFileSync(opts.files.openapi);
  /** Answer with the file `pick` names for the request, cached for its max age. */
  const send =
    (pick: (req: Request) => { file: string; maxAge: number }): RequestHandler =>
    (req: Request, res: Response, next) => {
      let picked: { file: string; maxAge: number };
      try {
        picked = pick(req);
      } catch (err) {
        return next(err);
      }
      res.setHeader('Content-Security-Policy', PAGE_CSP);
      res.setHeader('Cache-Control', picked.maxAge > 0 ? `public, max-age=${picked.maxAge / 1000}` : 'no-cache');
      // Names from URLs are checked before (FILE_NAME, the manifest's list); dotted directories of the
      // install itself (pnpm's node_modules/.pnpm, a checkout under ~/.local) must not turn into 404s.
      res.sendFile(picked.file, { cacheControl: false, dotfiles: 'allow', acceptRanges: false }, (err?: Error) => {
        if (err && !res.headersSent) next(new ServiceError('NOT_FOUND', `no file ${req.path}`));
      });
    };
  const own = (file: string) => ({ file, maxAge: OWN_MAX_AGE_MS });
  const vendor = (file: string) => ({ file, maxAge: VENDOR_MAX_AGE_MS });
  /** A file of a static directory, by a plain name from the URL. */
  const inDir = (dir: string, name: unknown): string => {
    if (typeof name !== 'string' || !FILE_NAME.test(name)) throw new ServiceError('NOT_FOUND', `no file ${String(name)}`);
    return path.join(dir, name);
  };

  routes.get('/openapi.json', metadata, (_req: Request, res: Response) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.type('application/json').send(openapi);
  });

  routes.get(
    '/docs',
    track,
    send(() => own(path.join(opts.files.web, 'docs.html'))),
  );
  const swagger = new Set(['swagger-ui.css', 'swagger-ui-bundle.js']);
  // The docs page's own files only: the try-it page's bundle is not reachable through /docs.
  const docsFiles = new Set(['docs.css', 'docs.js', 'docs.js.map']);
  routes.get(
    '/docs/:file',
    track,
    send((req) => {
      const name = req.params.file as string;
      if (swagger.has(name)) return vendor(path.join(opts.files.swaggerUi, name));
      if (docsFiles.has(name)) return own(inDir(opts.files.web, name));
      throw new ServiceError('NOT_FOUND', `no file /docs/${name.slice(0, 64)}`);
    }),
  );

  if (!opts.tryItPage) return;
  routes.get(
    '/',
    track,
    send(() => own(path.join(opts.files.web, 'index.html'))),
  );
  routes.get(
    '/ui/vendor/tf.min.js',
    track,
    send(() => vendor(opts.files.tfjs)),
  );
  routes.get(
    '/ui/:file',
    track,
    send((req) => own(inDir(opts.files.web, req.params.file))),
  );
  routes.get(
    '/ui/models/:name/:version/:file',
    track,
    send((req) => own(dataplane.browserFile(req.params.name as string, req.params.version as string, req.params.file as string))),
  );
}
