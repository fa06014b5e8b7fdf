/**
 * The OpenAPI document (api/openapi.json) checked against real answers.
 *
 * `watchContract(server)` listens on an http.Server and, for every response
 * it writes, checks that the document describes it: the request's path
 * matches a path template and its method an operation there, the status is
 * one the operation lists (or `default`), the headers it marks required are
 * present, the content type is one it lists, and a JSON body validates
 * against that content's schema (ajv, JSON Schema 2020-12 as OpenAPI 3.1
 * uses). A path matching no template must answer 404 with an Error body; a
 * documented path asked with an undocumented method, 405 with an Error body
 * and `Allow` (the OIP form of both under /v2). What fails is recorded, not
 * thrown: the test helpers turn the record into an assertion when the
 * service stops.
 *
 * Matching follows express's routing: case-insensitive, one optional
 * trailing slash, a `{param}` is one non-empty path segment, and a literal
 * template wins over one with parameters. HEAD is answered by the GET
 * operation, without a body.
 */
import { AssertionError } from 'node:assert';
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

export const OPENAPI_FILE = path.resolve(__dirname, '..', '..', '..', 'api', 'openapi.json');

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
/** The ajv key of the document: response schemas are compiled as `openapi#/<json pointer>`. */
const DOC_ID = 'openapi';
/** JSON bodies bigger than this are not kept (none of the API's are near it). */
const MAX_KEPT_BODY = 64 * 1024 * 1024;

type Json = Record<string, any>;

export interface Violation {
  method: string;
  url: string;
  status: number;
  /** What failed, in a sentence. */
  problem: string;
  /** The schema errors, when a body failed validation. */
  errors?: string[];
}

/** One response as written, with its request line. */
export interface Exchange {
  method: string;
  url: string;
  requestHeaders: http.IncomingHttpHeaders;
  status: number;
  /** Response headers, names lower-cased. */
  headers: Record<string, unknown>;
  /** The body as written (only kept when it was declared JSON), and its size. */
  body: Buffer | undefined;
  bodyBytes: number;
}

interface Template {
  template: string;
  regex: RegExp;
  params: number;
  pointer: string;
  item: Json;
}

export function loadOpenApi(file = OPENAPI_FILE): Json {
  return JSON.parse(readFileSync(file, 'utf8')) as Json;
}

/** A JSON pointer segment. */
export function pointerSegment(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The media type of a content-type header, lower-cased, without parameters. */
function mediaType(contentType: unknown): string | undefined {
  if (typeof contentType !== 'string' || contentType.trim() === '') return undefined;
  return contentType.split(';')[0].trim().toLowerCase();
}

function isJsonType(type: string): boolean {
  return type === 'application/json' || type.endsWith('+json');
}

/** The request's path as express routes it: the request target up to `?`, without scheme and host. */
export function pathOf(url: string): string {
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(url);
  const target = absolute ? url.slice(absolute[0].length) || '/' : url;
  return target.split('?')[0].split('#')[0];
}

/** A CORS preflight: outside what OpenAPI describes (the browser's question about a route, not a call of it). */
export function isPreflight(method: string, headers: http.IncomingHttpHeaders): boolean {
  return method === 'OPTIONS' && headers.origin !== undefined && headers['access-control-request-method'] !== undefined;
}

export class OpenApiContract {
  readonly doc: Json;
  private readonly ajv: Ajv2020;
  private readonly templates: Template[];
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(doc: Json = loadOpenApi()) {
    this.doc = doc;
    this.ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
    addFormats(this.ajv);
    this.ajv.addSchema(doc, DOC_ID);
    this.templates = Object.entries(doc.paths as Json).map(([template, item]) => {
      const segments = template.split('/').slice(1);
      const source = segments.map((s) => (/^\{[^}]+\}$/.test(s) ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/');
      return {
        template,
        regex: new RegExp(`^/${source}${template === '/' ? '' : '/?'}$`, 'i'),
        params: segments.filter((s) => s.startsWith('{')).length,
        pointer: `#/paths/${pointerSegment(template)}`,
        item: item as Json,
      };
    });
  }

  /** The path template a request path falls under: literal templates first, as OpenAPI asks. */
  match(pathname: string): Template | undefined {
    return this.templates.filter((t) => t.regex.test(pathname)).sort((a, b) => a.params - b.params)[0];
  }

  /** The compiled schema at a JSON pointer of the document (`#/...`). */
  validator(pointer: string): ValidateFunction {
    let v = this.validators.get(pointer);
    if (!v) {
      v = this.ajv.compile({ $ref: `${DOC_ID}${pointer}` });
      this.validators.set(pointer, v);
    }
    return v;
  }

  /** Follow a `$ref` to a component (responses, headers, parameters): the object and its pointer. */
  resolve(obj: Json, pointer: string): { obj: Json; pointer: string } {
    let o = obj;
    let p = pointer;
    for (let i = 0; i < 10 && typeof o.$ref === 'string'; i++) {
      p = o.$ref as string;
      o = p
        .slice(2)
        .split('/')
        .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
        .reduce<Json>((acc, k) => acc?.[k], this.doc);
      if (o === undefined) throw new Error(`unresolvable $ref ${p}`);
    }
    return { obj: o, pointer: p };
  }

  /** Whether a request path lies under /v2, where the Open Inference Protocol's error form applies. */
  private isOip(pathname: string): boolean {
    return /^\/v2(\/|$)/i.test(pathname);
  }

  /**
   * Check one exchange against the document: the problems found (none when
   * it conforms), or undefined when it is outside the document (a CORS
   * preflight).
   */
  check(x: Exchange): Violation[] | undefined {
    if (isPreflight(x.method, x.requestHeaders)) return undefined;
    const problems: Violation[] = [];
    const fail = (problem: string, errors?: string[]) => problems.push({ method: x.method, url: x.url, status: x.status, problem, errors });
    const pathname = pathOf(x.url);
    const oip = this.isOip(pathname);
    const generic = (name: string) => this.checkResponse(x, { $ref: `#/components/responses/${name}` }, '', fail);
    const t = this.match(pathname);
    if (!t) {
      if (x.status !== 404) fail(`no documented path matches ${pathname}, yet the answer is ${x.status}, not 404`);
      else generic(oip ? 'OipNotFound' : 'NotFound');
      return problems;
    }
    const method = x.method.toLowerCase();
    const opMethod = t.item[method] !== undefined ? method : method === 'head' && t.item.get !== undefined ? 'get' : undefined;
    if (opMethod === undefined) {
      // A route that exists only under a setting (x-absent-when) answers every method 404 when it is off.
      if (x.status === 404 && t.item['x-absent-when'] !== undefined) generic('NotFound');
      else if (x.status !== 405) fail(`${x.method} is not documented on ${t.template}, yet the answer is ${x.status}, not 405`);
      else generic(oip ? 'OipMethodNotAllowed' : 'MethodNotAllowed');
      return problems;
    }
    const op = t.item[opMethod] as Json;
    const responses = (op.responses ?? {}) as Json;
    const key = [String(x.status), `${String(x.status)[0]}XX`, 'default'].find((k) => responses[k] !== undefined);
    if (key === undefined) {
      fail(
        `status ${x.status} is not documented for ${opMethod.toUpperCase()} ${t.template} (documented: ${Object.keys(responses).join(', ')})`,
      );
      return problems;
    }
    this.checkResponse(x, responses[key] as Json, `${t.pointer}/${opMethod}/responses/${key}`, fail);
    return problems;
  }

  private checkResponse(x: Exchange, response: Json, pointer: string, fail: (problem: string, errors?: string[]) => void): void {
    const { obj, pointer: at } = this.resolve(response, pointer);
    const where = at.startsWith('#/components/') ? ` (${at.split('/').pop()})` : '';
    for (const [name, h] of Object.entries((obj.headers ?? {}) as Json)) {
      const header = this.resolve(h as Json, '').obj;
      if (header.required === true && x.headers[name.toLowerCase()] === undefined) fail(`required header ${name} is missing${where}`);
    }
    const type = mediaType(x.headers['content-type']);
    const content = obj.content as Json | undefined;
    if (!content) {
      if (x.bodyBytes > 0 || type !== undefined)
        fail(`the answer has a body (${type ?? 'no content type'}), but the documented response has none${where}`);
      return;
    }
    if (type === undefined) {
      fail(`the answer has no content type; documented: ${Object.keys(content).join(', ')}${where}`);
      return;
    }
    const documented = Object.keys(content).find((k) => {
      const d = k.toLowerCase();
      return d === type || d === '*/*' || (d.endsWith('/*') && type.startsWith(d.slice(0, -1)));
    });
    if (documented === undefined) {
      fail(`content type ${type} is not documented; documented: ${Object.keys(content).join(', ')}${where}`);
      return;
    }
    // HEAD has no body; a 206 carries a byte range of the file, not a whole document.
    if (!isJsonType(type) || x.method === 'HEAD' || x.status === 206 || (content[documented] as Json).schema === undefined) return;
    if (x.body === undefined) {
      if (x.bodyBytes > 0) fail(`a JSON body of ${x.bodyBytes} bytes was too big to keep and check`);
      else fail(`a JSON answer with an empty body${where}`);
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(x.body.toString('utf8'));
    } catch (err) {
      fail(`the body is declared ${type} but is not JSON: ${(err as Error).message}${where}`);
      return;
    }
    const validate = this.validator(`${at}/content/${pointerSegment(documented)}/schema`);
    if (!validate(body)) fail(`the body does not match the schema of ${documented}${where}`, formatErrors(validate.errors));
  }
}

export function formatErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).slice(0, 20).map((e) => `${e.instancePath || '(body)'} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`);
}

export function formatViolations(violations: readonly Violation[]): string {
  return violations
    .map((v) => `${v.method} ${v.url} -> ${v.status}: ${v.problem}${v.errors?.length ? `\n      ${v.errors.join('\n      ')}` : ''}`)
    .join('\n  ');
}

export interface ContractWatch {
  /** Responses checked (CORS preflights excepted). */
  readonly checked: number;
  /** CORS preflights seen and left out. */
  readonly exempt: number;
  readonly violations: readonly Violation[];
  /** Stop watching the server. */
  detach(): void;
  /** Throw an AssertionError listing every violation, if there is any. */
  assertClean(): void;
}

let shared: OpenApiContract | undefined;

/** The document on disk, compiled once per process. */
export function sharedContract(): OpenApiContract {
  shared ??= new OpenApiContract();
  return shared;
}

/** Header names and values handed to writeHead directly (an object, or a flat or paired array). */
function headersFromArgs(args: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const h = args.find((a, i) => i > 0 && a !== null && typeof a === 'object');
  if (Array.isArray(h)) {
    const pairs = Array.isArray(h[0]) ? (h as unknown[][]) : Array.from({ length: h.length / 2 }, (_, i) => [h[2 * i], h[2 * i + 1]]);
    for (const [k, v] of pairs) out[String(k).toLowerCase()] = v;
  } else if (h) {
    for (const [k, v] of Object.entries(h as Record<string, unknown>)) out[k.toLowerCase()] = v;
  }
  return out;
}

/**
 * Watch every response of `server` (attach before it serves: the listener
 * goes first, so it sees responses that are written synchronously). The
 * response's write, end and writeHead are wrapped to see what is written;
 * they pass every argument on and return what the originals return.
 */
export function watchContract(server: http.Server, contract: OpenApiContract = sharedContract()): ContractWatch {
  const violations: Violation[] = [];
  let checked = 0;
  let exempt = 0;
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const requestHeaders = req.headers;
    const chunks: Buffer[] = [];
    let bytes = 0;
    let kept = true;
    let direct: Record<string, unknown> = {};
    const keep = (chunk: unknown, encoding: unknown) => {
      if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
      const b =
        typeof chunk === 'string'
          ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
          : Buffer.from(chunk as Uint8Array);
      bytes += b.length;
      const type = mediaType(res.getHeader('content-type') ?? direct['content-type']);
      if (kept && (type === undefined || isJsonType(type)) && bytes <= MAX_KEPT_BODY) chunks.push(b);
      else kept = false;
    };
    const writeHead = res.writeHead;
    res.writeHead = function (this: http.ServerResponse, ...args: unknown[]) {
      direct = { ...direct, ...headersFromArgs(args) };
      return (writeHead as (...a: unknown[]) => http.ServerResponse).apply(this, args);
    } as typeof res.writeHead;
    const write = res.write;
    res.write = function (this: http.ServerResponse, ...args: unknown[]) {
      keep(args[0], args[1]);
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    } as typeof res.write;
    const end = res.end;
    res.end = function (this: http.ServerResponse, ...args: unknown[]) {
      keep(args[0], args[1]);
      return (end as (...a: unknown[]) => http.ServerResponse).apply(this, args);
    } as typeof res.end;
    res.once('finish', () => {
      try {
        const headers: Record<string, unknown> = { ...direct };
        for (const [k, v] of Object.entries(res.getHeaders())) headers[k.toLowerCase()] = v;
        const found = contract.check({
          method,
          url,
          requestHeaders,
          status: res.statusCode,
          headers,
          body: kept && bytes > 0 ? Buffer.concat(chunks) : undefined,
          bodyBytes: bytes,
        });
        if (found === undefined) {
          exempt++;
          return;
        }
        checked++;
        violations.push(...found);
      } catch (err) {
        violations.push({
          method,
          url,
          status: res.statusCode,
          problem: `the contract check failed: ${(err as Error).stack ?? String(err)}`,
        });
      }
    });
  };
  server.prependListener('request', onRequest);
  return {
    get checked() {
      return checked;
    },
    get exempt() {
      return exempt;
    },
    violations,
    detach() {
      server.off('request', onRequest);
    },
    assertClean() {
      if (violations.length === 0) return;
      throw new AssertionError({
        message: `${violations.length} response(s) of ${checked} do not match api/openapi.json:\n  ${formatViolations(violations)}`,
      });
    },
  };
}

/** Every operation of the document: method and path template. */
export function documentedOperations(doc: Json): Array<{ method: string; path: string }> {
  return Object.entries(doc.paths as Json).flatMap(([p, item]) =>
    METHODS.filter((m) => (item as Json)[m] !== undefined).map((m) => ({ method: m.toUpperCase(), path: p })),
  );
}
