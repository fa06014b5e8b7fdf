/**
 * api/openapi.json: a valid OpenAPI 3.1 document, describing exactly the
 * routes the HTTP app registers, whose examples match their own schemas,
 * whose error codes are the code table's; and the contract checker that
 * holds real answers to it catches answers that drift from it.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CODE_TABLE } from '../../src/core/errors';
import { createService } from '../../src/service';
import { silentLog, testConfig } from '../helpers';
import {
  documentedOperations,
  type Exchange,
  loadOpenApi,
  OpenApiContract,
  pointerSegment,
  type Violation,
  watchContract,
} from '../support/openapi-contract';

const importEsm = new Function('s', 'return import(s)') as (s: string) => Promise<any>;

const doc = loadOpenApi();

interface Layer {
  route?: { path: unknown; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  rawPath?: unknown;
}

/** The method and path of every route of an express router, nested routers included (`:param` written `{param}`). */
function registeredRoutes(stack: Layer[], prefix = ''): string[] {
  return stack.flatMap((layer): string[] => {
    if (layer.route) {
      assert.equal(typeof layer.route.path, 'string', 'route paths are strings');
      const p = `${prefix}${layer.route.path as string}`.replace(/:([A-Za-z0-9_]+)/g, '{$1}') || '/';
      // `_all` is MethodTable's 405 answer for the other methods of a known path.
      return Object.keys(layer.route.methods)
        .filter((m) => m !== '_all')
        .map((m) => `${m.toUpperCase()} ${p}`);
    }
    if (layer.handle?.stack) {
      const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
      return registeredRoutes(layer.handle.stack, prefix + mount);
    }
    return [];
  });
}

async function routesOfApp(env: Record<string, string>): Promise<string[]> {
  const service = await createService(testConfig(env), silentLog);
  try {
    const app = service.httpServer.listeners('request')[0] as unknown as { router: { stack: Layer[] } };
    return registeredRoutes(app.router.stack);
  } finally {
    await service.repository.close();
  }
}

describe('api/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const { Validator } = await importEsm('@seriousme/openapi-schema-validator');
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
    assert.equal(validator.version, '3.1');
  });

  it('documents every route the HTTP app registers, and no other', async () => {
    const documented = documentedOperations(doc).map((o) => `${o.method} ${o.path}`);
    const registered = await routesOfApp({ ADMIN_TOKEN: 'a-token-of-16-chars-or-more' });
    assert.ok(registered.length >= 20, `the router stack was read (${registered.length} routes)`);
    assert.deepEqual(
      registered.filter((r) => !documented.includes(r)),
      [],
      'routes the app registers that api/openapi.json does not document',
    );
    assert.deepEqual(
      documented.filter((d) => !registered.includes(d)),
      [],
      'operations api/openapi.json documents that the app does not register',
    );
  });

  it('marks the routes TRY_IT_PAGE=off removes', async () => {
    const registered = await routesOfApp({ TRY_IT_PAGE: 'off' });
    const absent = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .filter(([, item]) => item['x-absent-when'] !== undefined)
      .map(([p]) => p);
    assert.deepEqual(absent.sort(), ['/', '/ui/models/{name}/{version}/{file}', '/ui/vendor/tf.min.js', '/ui/{file}']);
    for (const p of absent) assert.ok(!registered.includes(`GET ${p}`), `${p} is not registered with TRY_IT_PAGE=off`);
  });

  it('has examples that match their own schemas', () => {
    const contract = new OpenApiContract(doc);
    let count = 0;
    const failures: string[] = [];
    const visit = (node: unknown, pointer: string) => {
      if (node === null || typeof node !== 'object') return;
      const o = node as Record<string, unknown>;
      // A Media Type or Parameter object: `schema` with `example` or `examples` beside it.
      if (o.schema !== undefined && (o.example !== undefined || o.examples !== undefined)) {
        const validate = contract.validator(`${pointer}/schema`);
        const values: Array<[string, unknown]> =
          o.example !== undefined
            ? [['example', o.example]]
            : Object.entries(o.examples as Record<string, { value: unknown }>).map(([k, e]) => [`examples/${k}`, e.value]);
        for (const [name, value] of values) {
          count++;
          if (!validate(value)) failures.push(`${pointer}/${name}: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
        }
      }
      for (const [k, v] of Object.entries(o)) if (k !== 'example' && k !== 'examples') visit(v, `${pointer}/${pointerSegment(k)}`);
    };
    visit(doc.paths, '#/paths');
    visit(doc.components, '#/components');
    assert.deepEqual(failures, []);
    assert.ok(count >= 60, `${count} examples checked`);
  });

  it('lists the error codes of the code table, each under the status the table gives it', () => {
    assert.deepEqual(doc.components.schemas.ErrorCode.enum, Object.keys(CODE_TABLE));
    const contract = new OpenApiContract(doc);
    const codes = Object.keys(CODE_TABLE) as Array<keyof typeof CODE_TABLE>;
    const responses: Array<[string, number, string]> = [
      ['#/components/responses/MethodNotAllowed', 405, '405 answers'],
      ['#/components/responses/NotFound', 404, '404 answers'],
    ];
    for (const [p, item] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(item)) {
        if (typeof op !== 'object' || !op.responses) continue;
        for (const status of Object.keys(op.responses)) {
          const at = `#/paths/${pointerSegment(p)}/${method}/responses/${status}`;
          responses.push([contract.resolve(op.responses[status], at).pointer, Number(status), `${method.toUpperCase()} ${p} ${status}`]);
        }
      }
    }
    let errorResponses = 0;
    for (const [pointer, status, what] of responses) {
      const { obj } = contract.resolve({ $ref: pointer }, pointer);
      if (!obj.content?.['application/json']?.schema) continue;
      const validate = contract.validator(`${pointer}/content/application~1json/schema`);
      const allowed = codes.filter((code) => validate({ error: { code, message: 'a message', requestId: 'r1' } }));
      if (allowed.length > 0) errorResponses++;
      assert.deepEqual(
        allowed.filter((code) => CODE_TABLE[code].http !== status),
        [],
        `${what}: codes whose status is not ${status}`,
      );
      if (status >= 400 && !/ \/v2|Oip|ready/.test(`${what} ${pointer}`)) assert.ok(allowed.length > 0, `${what} takes the Error form`);
    }
    assert.ok(errorResponses >= 45, `${errorResponses} error responses checked`);
  });
});

describe('the contract checker', () => {
  const contract = new OpenApiContract(doc);
  const violationsOf = (x: Partial<Omit<Exchange, 'body' | 'bodyBytes'>> & { body?: unknown }) => {
    const body = x.body === undefined ? undefined : Buffer.from(typeof x.body === 'string' ? x.body : JSON.stringify(x.body));
    return contract.check({
      method: 'GET',
      url: '/healthz',
      requestHeaders: {},
      status: 200,
      headers: { 'x-request-id': 'r1', 'content-type': 'application/json; charset=utf-8' },
      ...x,
      body,
      bodyBytes: body?.length ?? 0,
    });
  };

  it('passes answers the document describes', () => {
    assert.deepEqual(violationsOf({ body: { status: 'ok' } }), []);
    assert.deepEqual(violationsOf({ method: 'HEAD' }), [], 'HEAD is answered by the GET operation, without a body');
    assert.deepEqual(violationsOf({ url: '/HEALTHZ/?x=1', body: { status: 'ok' } }), [], 'matched as express routes');
    assert.deepEqual(
      violationsOf({
        url: '/v2/models/baseline/ready',
        status: 400,
        body: { name: 'baseline', ready: false },
      }),
      [],
    );
    const notFound = { error: { code: 'NOT_FOUND', message: 'no route GET /nothing', requestId: 'r1' } };
    assert.deepEqual(violationsOf({ url: '/nothing', status: 404, body: notFound }), []);
    assert.deepEqual(violationsOf({ url: '/v2/nothing', status: 404, body: { error: 'no route GET /v2/nothing' } }), []);
    const notAllowed = { error: { code: 'METHOD_NOT_ALLOWED', message: 'DELETE is not allowed', requestId: 'r1' } };
    assert.deepEqual(
      violationsOf({
        method: 'DELETE',
        status: 405,
        headers: { 'x-request-id': 'r1', 'content-type': 'application/json', allow: 'GET, HEAD' },
        body: notAllowed,
      }),
      [],
    );
    assert.equal(
      violationsOf({
        method: 'OPTIONS',
        requestHeaders: { origin: 'https://a.example', 'access-control-request-method': 'POST' },
        status: 204,
      }),
      undefined,
      'CORS preflights are outside the document',
    );
  });

  it('reports answers that drift from the document', () => {
    const problems = (v: Violation[] | undefined) => (v ?? []).map((x) => x.problem).join(' | ');
    assert.match(problems(violationsOf({ body: { status: 'fine' } })), /does not match the schema/);
    assert.match(problems(violationsOf({ body: { status: 'ok', extra: 1 } })), /does not match the schema/);
    assert.match(problems(violationsOf({ status: 418, body: { status: 'ok' } })), /status 418 is not documented/);
    assert.match(
      problems(violationsOf({ headers: { 'x-request-id': 'r1', 'content-type': 'text/plain' }, body: 'ok' })),
      /content type text\/plain/,
    );
    assert.match(
      problems(violationsOf({ headers: { 'content-type': 'application/json' }, body: { status: 'ok' } })),
      /X-Request-Id is missing/,
    );
    assert.match(problems(violationsOf({ body: '{"status": "ok"' })), /not JSON/);
    assert.match(problems(violationsOf({ url: '/nothing', body: { status: 'ok' } })), /no documented path matches/);
    assert.match(problems(violationsOf({ url: '/nothing', status: 404, body: { error: 'flat' } })), /does not match the schema/);
    assert.match(problems(violationsOf({ method: 'DELETE', status: 404, body: {} })), /not 405/);
    assert.match(
      problems(
        violationsOf({ method: 'DELETE', status: 405, body: { error: { code: 'METHOD_NOT_ALLOWED', message: 'no', requestId: 'r' } } }),
      ),
      /Allow is missing/,
    );
    const wrongCode = { error: { code: 'INVALID_ARGUMENT', message: 'no such model', requestId: 'r1' } };
    assert.match(problems(violationsOf({ url: '/v1/models', status: 404, body: wrongCode })), /status 404 is not documented/);
    assert.match(
      problems(violationsOf({ method: 'POST', url: '/v1/classify', status: 404, body: wrongCode })),
      /does not match the schema/,
      'a 404 must carry NOT_FOUND',
    );
  });

  describe('on a live server', () => {
    let server: http.Server;
    let base: string;
    let watch: ReturnType<typeof watchContract>;
    before(async () => {
      // A server that answers some paths right and some wrong.
      server = http.createServer((req, res) => {
        res.setHeader('X-Request-Id', 'r1');
        if (req.url === '/healthz') return res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"ok"}');
        if (req.url === '/readyz') {
          res.statusCode = 200;
          res.setHeader('Content-Type', 'application/json');
          res.write('{"ready":');
          return res.end('"yes"}');
        }
        if (req.url === '/v1/models') return res.writeHead(204).end();
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      });
      watch = watchContract(server, contract);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(async () => {
      watch.detach();
      await new Promise((resolve) => server.close(resolve));
    });

    it('sees what the server writes, and reports each drift', async () => {
      assert.equal(await (await fetch(`${base}/healthz`)).text(), '{"status":"ok"}', 'the answer is passed on unchanged');
      assert.equal(await (await fetch(`${base}/readyz`)).text(), '{"ready":"yes"}');
      await (await fetch(`${base}/v1/models`)).arrayBuffer();
      await (await fetch(`${base}/nowhere`)).arrayBuffer();
      await (
        await fetch(`${base}/healthz`, {
          method: 'OPTIONS',
          headers: { origin: 'https://a.example', 'access-control-request-method': 'GET' },
        })
      ).arrayBuffer();
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(watch.checked, 4);
      assert.equal(watch.exempt, 1);
      assert.deepEqual(
        watch.violations.map((v) => `${v.method} ${v.url} ${v.status}`),
        ['GET /readyz 200', 'GET /v1/models 204', 'GET /nowhere 200'],
      );
      assert.throws(
        () => watch.assertClean(),
        (err: Error) => err.name === 'AssertionError' && /3 response\(s\) of 4/.test(err.message),
      );
    });
  });
});
