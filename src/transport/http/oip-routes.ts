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
import { checkShape, type InputTensor } from '../oip/codec';
import type { OipService } from '../oip/service';
import type { BodyReader } from './body';
import { declares, decodeBase64, EMPTY_JSON_BODY, hasBody, unsupportedContentType } from './parse';
import { MethodTable } from './methods';
import { answeredWith, servedBy } from './pipeline';
import { sendJson } from './respond';

export interface OipRouteOptions {
  /** Starts the pipeline call of a route (transport oip-http). */
  track: (endpoint: Endpoint) => RequestHandler;
  /** The hot routes' body reader (no generic body parser). */
  body: BodyReader;
}

/** OIP's "not ready" answer: the protocol asks for a 4xx status. */
const NOT_READY = 400;

/** Deepest `data` nesting accepted: a tensor has a handful of dimensions; hostile JSON can have a million. */
const MAX_DATA_DEPTH = 16;

/** Flatten nested JSON arrays (row-major), as OIP allows `data` nested or flat. Iterative: no stack to exhaust. */
export function flattenData(data: unknown, where: string): unknown[] {
  if (!Array.isArray(data)) throw invalid(`${where}.data must be an array`);
  const out: unknown[] = [];
  const stack: Array<{ items: unknown[]; next: number }> = [{ items: data, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.next === top.items.length) {
      stack.pop();
      continue;
    }
    const v = top.items[top.next++];
    if (!Array.isArray(v)) out.push(v);
    else if (stack.length >= MAX_DATA_DEPTH) throw invalid(`${where}.data is nested deeper than ${MAX_DATA_DEPTH} levels`);
    else stack.push({ items: v, next: 0 });
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** JSON inputs -> tensors. BYTES elements of the `image` input are base64 strings. */
export function jsonInputs(body: Record<string, unknown>): InputTensor[] {
  if (!Array.isArray(body.inputs)) throw invalid('inputs must be an array of tensors {name, shape, datatype, data}');
  return body.inputs.map((t, i) => {
    const where = `inputs[${i}]`;
    if (!isObject(t)) throw invalid(`${where} must be an object`);
    checkKnownFields(t, ['name', 'shape', 'datatype', 'data', 'parameters'], where);
    if (typeof t.name !== 'string' || typeof t.datatype !== 'string') throw invalid(`${where} needs a string name and datatype`);
    const shape = checkShape(t.shape, where);
    const flat = flattenData(t.data, where);
    if (t.datatype === 'BYTES') {
      return { name: t.name, datatype: t.datatype, shape, data: flat.map((v, j) => decodeBase64(v, `${where}.data[${j}]`)) };
    }
    if (!flat.every((v) => typeof v === 'number' && Number.isFinite(v)))
      throw invalid(`${where}.data must hold finite numbers for ${t.datatype}`);
    if (t.datatype === 'UINT8' && !flat.every((v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255)) {
      throw invalid(`${where}.data must hold integers 0..255 for UINT8`);
    }
    return { name: t.name, datatype: t.datatype, shape, data: flat as number[] };
  });
}

function jsonOutputs(body: Record<string, unknown>): string[] | undefined {
  if (body.outputs === undefined) return undefined;
  if (!Array.isArray(body.outputs) || !body.outputs.every((o) => isObject(o) && typeof o.name === 'string')) {
    throw invalid('outputs must be an array of {"name": ...}');
  }
  return body.outputs.map((o) => (o as { name: string }).name);
}

/** The request's `abstain` parameter (a JSON boolean); other parameters are the client's business, as OIP allows. */
function abstainParameter(parameters: unknown): boolean | undefined {
  if (parameters === undefined) return undefined;
  if (!isObject(parameters)) throw invalid('parameters must be an object');
  const v = parameters.abstain;
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw invalid('parameters.abstain must be a JSON boolean');
  return v;
}

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

  /** A JSON body (body-parser took no other type, and read none without a type); any other type is refused. */
  const inferBody = async (req: Request, res: Response): Promise<unknown> => {
    const type = req.get('content-type');
    if (type && !declares(type, 'application/json')) throw unsupportedContentType(type);
    if (!hasBody(req.headers)) throw invalid(EMPTY_JSON_BODY);
    return type ? opts.body.json(req, res) : undefined;
  };
  const inferRoute = route('infer')(async (req, res) => {
    const body = await inferBody(req, res);
    if (!isObject(body)) throw invalid('request body must be a JSON object with "inputs"');
    checkKnownFields(body, ['id', 'inputs', 'outputs', 'parameters'], 'the request');
    if (body.id !== undefined && typeof body.id !== 'string') throw invalid('id must be a string');
    const result = await oip.infer({
      model: req.params.name as string,
      version: req.params.version as string | undefined,
      inputs: jsonInputs(body),
      outputs: jsonOutputs(body),
      abstain: abstainParameter(body.parameters),
      transport: 'oip-http',
    });
    servedBy(res, { model: result.modelName, arm: result.arm });
    sendJson(res, {
      model_name: result.modelName,
      model_version: result.modelVersion,
      ...(body.id !== undefined ? { id: body.id } : {}),
      outputs: result.outputs.map((t) => ({
        name: t.name,
        datatype: t.datatype,
        shape: t.shape,
        data: Array.from(t.data as ArrayLike<number | string>),
      })),
    });
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
