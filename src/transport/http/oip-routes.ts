/**
 * Open Inference Protocol v2 over REST: /v2 and /v2/models/... with the JSON
 * tensor format. Errors are `{"error": "<message>"}` as the protocol asks,
 * with the status from the service's one code table.
 */
import express, { type Request, type RequestHandler, type Response } from 'express';
import type { DataPlane } from '../../core/dataplane';
import { invalid, ServiceError } from '../../core/errors';
import { checkKnownFields } from '../../core/rules';
import type { Endpoint } from '../../pipeline/pipeline';
import type { OipService } from '../oip/service';
import { type BodyReader, parseJson } from './body';
import { MethodTable } from './methods';
import { encodeResponse, INFERENCE_HEADER, INFERENCE_HEADER_NAME, jsonInputs, outputRequest, splitBody } from './oip-rest';
import { declares, EMPTY_JSON_BODY, hasBody, isObject, unsupportedContentType } from './parse';
import { answeredWith, servedBy } from './pipeline';
import { sendBytes, sendJsonText } from './respond';

export { flattenData, jsonInputs } from './oip-rest';

export interface OipRouteOptions {
  /** Starts the pipeline call of a route (transport oip-http). */
  track: (endpoint: Endpoint) => RequestHandler;
  body: BodyReader;
}

/** What an inference request may be sent as: JSON, or JSON then binary tensor data (Triton's clients send no type at all). */
const INFER_TYPES = `application/json, or application/octet-stream with ${INFERENCE_HEADER_NAME} for binary tensor data`;

/** OIP's "not ready" answer: the protocol asks for a 4xx status. */
const NOT_READY = 400;

/** An error in OIP's form, `{"error": "<message>"}`, with the status from the one code table. */
export function sendOipError(res: Response, err: unknown): void {
  const e = ServiceError.from(err);
  answeredWith(res, e);
  if (e.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(e.retryAfterSeconds));
  res.status(e.httpStatus).json({ error: e.code === 'INTERNAL' ? 'internal error' : e.message });
}

export function oipRouter(dataplane: DataPlane, oip: OipService, opts: OipRouteOptions): express.Router {
  const r = express.Router();
  const routes = new MethodTable(r);
  /** A route: its pipeline call, then its handler, whose errors answer in OIP's form. */
  const route =
    (endpoint: Endpoint, ...before: RequestHandler[]) =>
    (fn: (req: Request, res: Response) => Promise<void> | void): RequestHandler[] => [
      opts.track(endpoint),
      ...before,
      (req: Request, res: Response) => {
        Promise.resolve()
          .then(() => fn(req, res))
          .catch((err) => sendOipError(res, err));
      },
    ];

  routes.get(
    '/v2',
    route('metadata')((_req, res) => {
      res.json(oip.serverMetadata());
    }),
  );
  routes.get(
    '/v2/health/live',
    route('health')((_req, res) => {
      res.json({ live: true });
    }),
  );
  routes.get(
    '/v2/health/ready',
    route('health')((_req, res) => {
      const ready = dataplane.isReady();
      res.status(ready ? 200 : NOT_READY).json({ ready });
    }),
  );

  // The names KServe's and Triton's clients list models by: GET /v2/models
  // (KServe) and the repository extension's index (Triton, KServe).
  routes.get(
    '/v2/models',
    route('metadata')((_req, res) => {
      res.json({ models: oip.modelNames() });
    }),
  );
  routes.post(
    '/v2/repository/index',
    route('metadata')((_req, res) => {
      res.json(oip.repositoryIndex());
    }),
  );

  const metadata = route('metadata')((req, res) => {
    res.json(oip.modelMetadata(req.params.name as string, req.params.version as string | undefined));
  });
  routes.get('/v2/models/:name', metadata);
  routes.get('/v2/models/:name/versions/:version', metadata);

  const ready = route('health')((req, res) => {
    const ok = dataplane.modelReady(req.params.name as string, req.params.version as string | undefined);
    res.status(ok ? 200 : NOT_READY).json({ name: req.params.name, ready: ok });
  });
  routes.get('/v2/models/:name/ready', ready);
  routes.get('/v2/models/:name/versions/:version/ready', ready);

  /**
   * The request body: JSON (through the fast reader, or body-parser for
   * the rare compressed or non-UTF-8 body) or, with
   * Inference-Header-Content-Length, the JSON header and the binary part.
   */
  const inferBody = async (req: Request, res: Response): Promise<{ body: unknown; binary: Buffer | undefined }> => {
    const type = req.get('content-type');
    const json = declares(type, 'application/json');
    if (!json && type && !declares(type, 'application/octet-stream')) throw unsupportedContentType(type, INFER_TYPES);
    if (!hasBody(req.headers)) throw invalid(EMPTY_JSON_BODY);
    const header = req.headers[INFERENCE_HEADER] as string | undefined;
    if (json && header === undefined) return { body: await opts.body.json(req, res), binary: undefined };
    const split = splitBody(await opts.body.bytes(req, res), header);
    return { body: parseJson(split.json, header === undefined ? 'request body' : 'the JSON inference header'), binary: split.binary };
  };
  const inferRoute = route('infer')(async (req, res) => {
    const { body, binary } = await inferBody(req, res);
    if (!isObject(body)) throw invalid('request body must be a JSON object with "inputs"');
    checkKnownFields(body, ['id', 'inputs', 'outputs', 'parameters'], 'the request');
    if (body.id !== undefined && typeof body.id !== 'string') throw invalid('id must be a string');
    const inputs = jsonInputs(body, binary);
    const outputs = outputRequest(body);
    const result = await oip.infer({
      model: req.params.name as string,
      version: req.params.version as string | undefined,
      inputs,
      outputs: outputs.names,
      abstain: outputs.abstain,
      transport: 'oip-http',
    });
    servedBy(res, { model: result.modelName, arm: result.arm });
    const answer = encodeResponse(result, body.id, outputs.binary);
    if ('json' in answer) sendJsonText(res, answer.json);
    else {
      res.setHeader(INFERENCE_HEADER_NAME, String(answer.headerLength));
      sendBytes(res, answer.body);
    }
  });
  routes.post('/v2/models/:name/infer', inferRoute);
  routes.post('/v2/models/:name/versions/:version/infer', inferRoute);
  routes.refuseOtherMethods(opts.track('unknown'), sendOipError);
  r.use(
    '/v2',
    route('unknown')((req, res) => sendOipError(res, new ServiceError('NOT_FOUND', `no route ${req.method} /v2${req.path}`))),
  );
  return r;
}
