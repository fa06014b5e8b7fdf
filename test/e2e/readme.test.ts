/**
 * The examples in README.md, docs/api.md and docs/ab-testing.md, run
 * against the service started as the README starts it (`npm start` from
 * the repository: the shipped models and models/routing.json), so the
 * documentation cannot drift from what the service answers.
 *
 * Every ```bash block holding a `curl`, `grpcurl` or `node examples/...`
 * command is cut into commands (quotes, `$(...)` and `\` continuations as
 * bash reads them) and each command is run by bash as written, from the
 * repository root:
 *   - curl: /usr/bin/curl for real (with --write-out for the status);
 *   - grpcurl (a Go binary not installed here): bash expands the arguments,
 *     then the test makes the same call with @grpc/grpc-js: the method must
 *     exist, `-plaintext` must be given, and every `-d` field must be a field
 *     of the request message;
 *   - node examples/*.mjs: run as written;
 * and every ```python block runs with /usr/bin/python3.
 *
 * A shown answer is a comment right after the command (`# {...}`, on the
 * same line or on the lines below it, optionally preceded by the status,
 * `# 200 {...}`; prose may follow the JSON). The real answer must have the
 * same fields and values, except: `...` as a member means more fields
 * follow (`{"model":"baseline",...}`); the string "..." stands for any
 * value and "abc..." for any string starting with abc; predictionId and
 * prediction_id, timings and timestamps are checked for their type only;
 * a number shown with decimals (a confidence) may differ by 5e-4. A
 * command without a shown answer must answer 2xx (grpcurl and node: exit
 * 0). A python block's trailing `# ...` lines are its printed output.
 *
 * Substitutions, the only ones made:
 *   - localhost:8080 and localhost:50051: the test's free HTTP and gRPC ports;
 *   - <predictionId from /v1/classify>: the predictionId of the first
 *     /v1/classify answer of the same file; <prediction_id from Classify>:
 *     the prediction_id of the first gRPC Classify answer of the same file;
 *   - $ADMIN_TOKEN: the service is started with ADMIN_TOKEN set, and the
 *     commands run with the same value in their environment.
 * Any other <placeholder> fails the test. `npm start &` is skipped (the test
 * has started it); any other command it cannot run fails the test.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as HEALTH_PROTO } from 'grpc-health-check';
import { LOADER_OPTIONS, OIP_PROTO, PRODUCT_PROTO } from '../../src/transport/grpc/protos';
import { clients, listServices } from '../grpc-clients';
import { ROOT } from '../helpers';
import { type ServiceProcess, startWithNpm } from '../support/processes';

const DOCS = ['README.md', 'docs/api.md', 'docs/ab-testing.md'];
const ADMIN_TOKEN = 'readme-examples-admin-token';
const SKIPPED = [/^npm start\s*&$/];
const PLACEHOLDERS = { http: '<predictionId from /v1/classify>', grpc: '<prediction_id from Classify>' };
const TOLERANCE = 5e-4;
const VOLATILE = new Set(['predictionId', 'prediction_id', 'timings', 'loadedAt', 'appliedAt', 'at']);
const ELIDED = '\u2026';
const STATUS_MARK = '\n@@http_code=';

// ---------------------------------------------------------------- reading the docs

interface Shown {
  status?: number;
  json?: unknown;
  text?: string;
}

interface Example {
  file: string;
  line: number;
  kind: 'curl' | 'grpcurl' | 'node' | 'python' | 'skip' | 'unknown';
  command: string;
  shown?: Shown;
}

interface Block {
  lang: string;
  line: number; // of the first line inside the fence
  text: string;
}

function blocks(markdown: string): Block[] {
  const out: Block[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && /^```\s*$/.test(l));
    assert.ok(end > i, `unclosed code block at line ${i + 1}`);
    out.push({ lang: open[1], line: i + 2, text: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return out;
}

interface Piece {
  kind: 'command' | 'comment';
  line: number;
  endLine: number;
  text: string;
  comment?: string; // a command's comment on its last line
}

/** Commands and comment lines of a shell block, cut where bash would cut them. */
function shellPieces(text: string, firstLine: number): Piece[] {
  const pieces: Piece[] = [];
  let i = 0;
  let line = firstLine;
  const readComment = () => {
    const end = text.indexOf('\n', i);
    const s = text.slice(i + 1, end < 0 ? text.length : end).replace(/^ /, '');
    i = end < 0 ? text.length : end;
    return s;
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t') i++;
    else if (c === '#') pieces.push({ kind: 'comment', line, endLine: line, text: readComment() });
    else {
      const start = i;
      const startLine = line;
      const stack: string[] = []; // '"' or '$('
      let comment: string | undefined;
      for (; i < text.length; i++) {
        const ch = text[i];
        const top = stack[stack.length - 1];
        if (ch === '\n') {
          if (stack.length === 0) break;
          line++;
        } else if (ch === '\\') {
          if (text[i + 1] === '\n') line++;
          i++;
        } else if (ch === '$' && text[i + 1] === '(') {
          stack.push('$(');
          i++;
        } else if (top === '"') {
          if (ch === '"') stack.pop();
        } else if (ch === "'") {
          const close = text.indexOf("'", i + 1);
          assert.ok(close > i, `unclosed ' at line ${line}`);
          line += text.slice(i, close).split('\n').length - 1;
          i = close;
        } else if (ch === '"') stack.push('"');
        else if (ch === ')' && top === '$(') stack.pop();
        else if (ch === '#' && stack.length === 0 && /\s/.test(text[i - 1])) {
          const end = i;
          comment = readComment();
          pieces.push({ kind: 'command', line: startLine, endLine: line, text: text.slice(start, end).trim(), comment });
          break;
        }
      }
      assert.equal(stack.length, 0, `unclosed quote or $( in the command at line ${startLine}`);
      if (comment === undefined) pieces.push({ kind: 'command', line: startLine, endLine: line, text: text.slice(start, i).trim() });
    }
  }
  return pieces;
}

/** The JSON text at the start of `s` (balanced braces, strings respected); prose may follow it. */
function leadingJson(s: string): string {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') {
      depth--;
      if (depth === 0) return s.slice(0, i + 1);
    }
  }
  throw new Error(`the shown answer is not balanced JSON: ${s}`);
}

/** `# {...}` or `# 200 {...}`, with `...` members turned into a marker that allows more fields. */
function shownAnswer(comment: string): Shown | undefined {
  const m = /^(?:(\d{3})\s+)?(?=[[{])/.exec(comment);
  if (!m) return undefined;
  const json = leadingJson(comment.slice(m[0].length)).replace(/([{,]\s*)\.\.\.(?=\s*[,}])/g, `$1"${ELIDED}":true`);
  try {
    return { status: m[1] ? Number(m[1]) : undefined, json: JSON.parse(json) };
  } catch (err) {
    throw new Error(`the shown answer is not JSON (${(err as Error).message}): ${comment}`, { cause: err });
  }
}

function kindOf(command: string): Example['kind'] {
  if (SKIPPED.some((re) => re.test(command))) return 'skip';
  if (/^curl\s/.test(command)) return 'curl';
  if (/^grpcurl\s/.test(command)) return 'grpcurl';
  if (/^node examples\/\S+\.mjs(\s|$)/.test(command)) return 'node';
  return 'unknown';
}

function examples(file: string): Example[] {
  const out: Example[] = [];
  for (const block of blocks(readFileSync(path.join(ROOT, file), 'utf8'))) {
    if (block.lang === 'python') {
      const lines = block.text.split('\n');
      let k = lines.length;
      while (k > 0 && lines[k - 1].startsWith('#')) k--;
      const printed = lines.slice(k).map((l) => l.replace(/^# ?/, ''));
      out.push({
        file,
        line: block.line,
        kind: 'python',
        command: lines.slice(0, k).join('\n'),
        shown: printed.length ? { text: printed.join('\n') } : undefined,
      });
      continue;
    }
    if (block.lang !== 'bash') continue;
    const pieces = shellPieces(block.text, block.line);
    const commands = pieces.filter((p) => p.kind === 'command');
    if (!commands.some((p) => ['curl', 'grpcurl', 'node'].includes(kindOf(p.text)))) continue;
    pieces.forEach((p, n) => {
      if (p.kind !== 'command') return;
      let shown = p.comment === undefined ? undefined : shownAnswer(p.comment);
      if (!shown) {
        // Comment lines right below the command: the answer, then perhaps prose.
        const below: string[] = [];
        for (let j = n + 1, at = p.endLine + 1; pieces[j]?.kind === 'comment' && pieces[j].line === at; j++, at++)
          below.push(pieces[j].text);
        if (below.length) shown = shownAnswer(below.join('\n'));
      }
      out.push({ file, line: p.line, kind: kindOf(p.text), command: p.text, shown });
    });
  }
  return out;
}

// ---------------------------------------------------------------- comparing answers

function jsonType(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/** Where the real answer differs from the shown one (empty when it matches). */
function differences(shown: unknown, real: unknown, at = '$', volatile = false): string[] {
  if (typeof shown === 'string' && shown.endsWith('...')) {
    const prefix = shown.slice(0, -3);
    return typeof real === 'string' && real.startsWith(prefix) ? [] : [`${at}: shown "${shown}", got ${JSON.stringify(real)}`];
  }
  if (jsonType(shown) !== jsonType(real)) return [`${at}: shown ${JSON.stringify(shown)}, got ${JSON.stringify(real)}`];
  if (Array.isArray(shown)) {
    const r = real as unknown[];
    if (!volatile && r.length !== shown.length) return [`${at}: shown ${shown.length} items, got ${r.length}: ${JSON.stringify(r)}`];
    return shown.flatMap((v, k) => (k < r.length ? differences(v, r[k], `${at}[${k}]`, volatile) : []));
  }
  if (jsonType(shown) === 'object') {
    const s = shown as Record<string, unknown>;
    const r = real as Record<string, unknown>;
    const out: string[] = [];
    for (const k of Object.keys(s)) {
      if (k === ELIDED) continue;
      if (!(k in r)) out.push(`${at}.${k}: shown, but not in the answer`);
      else out.push(...differences(s[k], r[k], `${at}.${k}`, volatile || VOLATILE.has(k)));
    }
    if (!(ELIDED in s)) for (const k of Object.keys(r)) if (!(k in s)) out.push(`${at}.${k}: in the answer, but not shown`);
    return out;
  }
  if (volatile) return [];
  if (typeof shown === 'number') {
    const r = real as number;
    const same = Number.isInteger(shown) ? r === shown : Math.abs(r - shown) <= TOLERANCE;
    return same ? [] : [`${at}: shown ${shown}, got ${r}`];
  }
  return shown === real ? [] : [`${at}: shown ${JSON.stringify(shown)}, got ${JSON.stringify(real)}`];
}

function assertMatches(shown: unknown, real: unknown, what: string): void {
  const diff = differences(shown, real);
  assert.deepEqual(diff, [], `${what}\nanswer: ${JSON.stringify(real)}`);
}

// ---------------------------------------------------------------- running commands

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: Record<string, string | undefined>, input?: string): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

const protos = protoLoader.loadSync([PRODUCT_PROTO, OIP_PROTO, HEALTH_PROTO], LOADER_OPTIONS);

interface FieldDescriptor {
  name: string;
  type: string;
  typeName: string;
  label: string;
}
interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  nestedType: MessageDescriptor[];
}

function messageType(name: string): MessageDescriptor | undefined {
  const def = protos[name] as protoLoader.MessageTypeDefinition<object, object> | undefined;
  return def && 'format' in def ? (def.type as MessageDescriptor) : undefined;
}

/** grpcurl's JSON as proto-loader takes it: field names checked (snake_case or lowerCamelCase) and made snake_case. */
function requestFromJson(value: unknown, type: MessageDescriptor, fullName: string, at: string): Record<string, unknown> {
  assert.equal(jsonType(value), 'object', `${at}: a ${fullName} is a JSON object`);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const field = type.field.find((f) => f.name === key || f.name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()) === key);
    assert.ok(field, `${at}.${key}: ${fullName} has no field ${key} (fields: ${type.field.map((f) => f.name).join(', ')})`);
    if (field.type !== 'TYPE_MESSAGE') {
      out[field.name] = v;
      continue;
    }
    const pkg = fullName.split('.').slice(0, -1).join('.');
    const nested = type.nestedType.find((t) => t.name === field.typeName);
    const typeName = nested
      ? `${fullName}.${field.typeName}`
      : messageType(`${pkg}.${field.typeName}`)
        ? `${pkg}.${field.typeName}`
        : field.typeName;
    const sub = nested ?? messageType(typeName);
    assert.ok(sub, `${at}.${key}: unknown message type ${field.typeName}`);
    out[field.name] =
      field.label === 'LABEL_REPEATED'
        ? (v as unknown[]).map((item, k) => requestFromJson(item, sub, typeName, `${at}.${key}[${k}]`))
        : requestFromJson(v, sub, typeName, `${at}.${key}`);
  }
  return out;
}

/** What grpcurl would do with these arguments (as bash expanded them), done with @grpc/grpc-js. */
async function grpcurl(args: string[], address: string): Promise<unknown> {
  let data: string | undefined;
  let plaintext = false;
  const positional: string[] = [];
  for (let k = 0; k < args.length; k++) {
    if (args[k] === '-plaintext') plaintext = true;
    else if (args[k] === '-d') data = args[++k];
    else if (args[k].startsWith('-')) assert.fail(`grpcurl option ${args[k]} is not one this test knows`);
    else positional.push(args[k]);
  }
  assert.ok(plaintext, 'the service serves plaintext gRPC: grpcurl needs -plaintext');
  assert.equal(positional[0], address, 'grpcurl talks to localhost:50051');
  if (positional[1] === 'list' && positional.length === 2) {
    const c = clients(Number(address.split(':')[1]));
    try {
      return await listServices(c);
    } finally {
      c.close();
    }
  }
  assert.equal(positional.length, 2, `grpcurl [options] address method: ${positional.join(' ')}`);
  const [serviceName, methodName] = positional[1].split('/');
  const service = protos[serviceName] as protoLoader.ServiceDefinition | undefined;
  const method = service && !('format' in service) ? service[methodName] : undefined;
  assert.ok(method, `no method ${positional[1]} in the served protos`);
  assert.ok(!method.requestStream && !method.responseStream, `${positional[1]} is not unary`);
  const requestType = method.requestType.type as MessageDescriptor;
  const fullName = `${serviceName.split('.').slice(0, -1).join('.')}.${requestType.name}`;
  const request = requestFromJson(data === undefined ? {} : JSON.parse(data), requestType, fullName, '-d');
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) =>
      client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + 30_000 },
        (err, answer) => (err ? reject(err) : resolve(answer)),
      ),
    );
  } finally {
    client.close();
  }
}

// ---------------------------------------------------------------- the tests

const found = new Map(DOCS.map((file) => [file, examples(file)]));

describe('the README and docs examples, run against npm start', () => {
  let svc: ServiceProcess;
  let shellEnv: Record<string, string | undefined>;
  let http: string;
  let grpcAddress: string;

  before(async () => {
    svc = await startWithNpm({ ADMIN_TOKEN, LOG_LEVEL: 'warn' });
    http = svc.http.replace('http://', '');
    grpcAddress = `127.0.0.1:${svc.grpcPort}`;
    shellEnv = { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin`, HOME: process.env.HOME, LANG: 'C.UTF-8', ADMIN_TOKEN };
  });

  after(async () => {
    const code = await svc?.stop();
    assert.equal(code, 0, svc?.output());
  });

  it('finds examples with shown answers in every file', () => {
    for (const [file, list] of found) {
      assert.ok(
        list.some((e) => e.kind !== 'skip'),
        `${file} has runnable examples`,
      );
    }
    for (const file of ['README.md', 'docs/api.md', 'docs/ab-testing.md']) {
      assert.ok(
        found.get(file)!.some((e) => e.shown),
        `${file} shows answers`,
      );
    }
  });

  it('shows the shipped routing config in docs/ab-testing.md', () => {
    const shipped = JSON.parse(readFileSync(path.join(ROOT, 'models/routing.json'), 'utf8'));
    const shown = blocks(readFileSync(path.join(ROOT, 'docs/ab-testing.md'), 'utf8')).find((b) => b.lang === 'json');
    assert.ok(shown, 'docs/ab-testing.md shows a routing config');
    assert.deepEqual(JSON.parse(shown.text), shipped);
  });

  for (const [file, list] of found) {
    describe(file, () => {
      const ids = new Map<string, string>();
      const substitute = (text: string): string => {
        let out = text.replaceAll('localhost:8080', http).replaceAll('localhost:50051', grpcAddress);
        for (const placeholder of Object.values(PLACEHOLDERS)) {
          if (!out.includes(placeholder)) continue;
          const id = ids.get(placeholder);
          assert.ok(id, `${placeholder}: no such answer earlier in ${file}`);
          out = out.replaceAll(placeholder, id);
        }
        const left = /<[^<>\s][^<>]*>/.exec(out);
        assert.equal(left, null, `a placeholder this test cannot fill: ${left?.[0]}`);
        return out;
      };
      const remember = (placeholder: string, id: unknown) => {
        if (typeof id === 'string' && id && !ids.has(placeholder)) ids.set(placeholder, id);
      };

      for (const ex of list) {
        const title = `${file}:${ex.line} ${ex.command.split('\n')[0].slice(0, 100)}${ex.shown ? ' (shown answer checked)' : ''}`;
        it(title, { skip: ex.kind === 'skip' ? 'the test started the service' : false }, async () => {
          const where = `${file}:${ex.line}`;
          assert.notEqual(ex.kind, 'unknown', `${where}: the test does not know how to run this command`);

          if (ex.kind === 'python') {
            assert.ok(ex.command.includes('localhost:8080'), `${where}: the Python example talks to localhost:8080`);
            const r = await run('/usr/bin/python3', ['-'], shellEnv, substitute(ex.command));
            assert.equal(r.code, 0, `${where}: python3 exits 0\n${r.stderr}`);
            if (ex.shown?.text !== undefined) assert.equal(r.stdout.trim(), ex.shown.text.trim(), `${where}: printed output`);
            return;
          }

          if (ex.kind === 'curl') {
            assert.match(ex.command, /localhost:8080\//, `${where}: the example talks to localhost:8080`);
            const shim = `curl() { /usr/bin/curl --show-error --write-out '${STATUS_MARK}%{http_code}' "$@"; }`;
            const r = await run('/bin/bash', ['-c', `set -eo pipefail\n${shim}\n${substitute(ex.command)}`], shellEnv);
            assert.equal(r.code, 0, `${where}: curl exits 0\n${r.stderr}`);
            const mark = r.stdout.lastIndexOf(STATUS_MARK);
            assert.ok(mark >= 0, `${where}: curl ran\n${r.stdout}`);
            const status = Number(r.stdout.slice(mark + STATUS_MARK.length));
            const body = r.stdout.slice(0, mark);
            if (ex.shown?.status !== undefined) assert.equal(status, ex.shown.status, `${where}: status\n${body}`);
            else assert.ok(status >= 200 && status < 300, `${where}: answered ${status}: ${body}`);
            let answer: any;
            try {
              answer = JSON.parse(body);
            } catch {
              answer = undefined;
            }
            if (/\/v1\/classify(\s|$)/.test(ex.command)) remember(PLACEHOLDERS.http, answer?.predictionId);
            if (ex.shown?.json !== undefined) {
              assert.notEqual(answer, undefined, `${where}: the answer is JSON: ${body}`);
              assertMatches(ex.shown.json, answer, `${where}: the shown answer`);
            }
            return;
          }

          assert.match(ex.command, /localhost:50051/, `${where}: the example talks to localhost:50051`);
          if (ex.kind === 'grpcurl') {
            const shim = `grpcurl() { printf '%s\\0' "$@"; }`;
            const r = await run('/bin/bash', ['-c', `set -eo pipefail\n${shim}\n${substitute(ex.command)}`], shellEnv);
            assert.equal(r.code, 0, `${where}: bash expands the arguments\n${r.stderr}`);
            const args = r.stdout.split('\0').slice(0, -1);
            const answer: any = await grpcurl(args, grpcAddress);
            if (args[args.length - 1].endsWith('/Classify')) remember(PLACEHOLDERS.grpc, answer?.prediction_id);
            if (ex.shown?.json !== undefined) assertMatches(ex.shown.json, answer, `${where}: the shown answer`);
            return;
          }

          // node examples/...
          const r = await run('/bin/bash', ['-c', `set -eo pipefail\n${substitute(ex.command)}`], shellEnv);
          assert.equal(r.code, 0, `${where}: the example exits 0\n${r.stderr}`);
          if (ex.shown?.json !== undefined) {
            const answer = JSON.parse(r.stdout);
            remember(PLACEHOLDERS.grpc, answer.prediction_id);
            assertMatches(ex.shown.json, answer, `${where}: the shown answer`);
          }
        });
      }
    });
  }
});
