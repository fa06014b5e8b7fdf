/**
 * Replays a Dockerfile's build steps without a Docker engine: each stage is a
 * directory standing in for the image's root filesystem; WORKDIR, ENV, ARG,
 * COPY (from the context, filtered by .dockerignore, or --from a stage) and
 * RUN (bash, in the stage's workdir) act on it; USER, EXPOSE, HEALTHCHECK,
 * STOPSIGNAL and CMD are recorded for the caller to start the result.
 *
 * What it cannot stand in for is the base image: RUN steps run with this
 * machine's node and npm. That is why the Dockerfile keeps its RUN steps
 * relative to WORKDIR and its runtime stage free of RUN.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export interface Instruction {
  op: string;
  args: string;
  line: number;
}

export interface Stage {
  name: string;
  from: string;
  root: string;
  workdir: string;
  env: Record<string, string>;
  args: Record<string, string>;
  user?: string;
  exposed: string[];
  healthcheck?: string[];
  stopSignal?: string;
  cmd?: string[];
}

/** Instructions with continuations joined and comments dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i];
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.trimEnd().endsWith('\\') && i + 1 < lines.length) {
      line = line.trimEnd().slice(0, -1).trimEnd();
      i++;
      // Comment lines inside a continued instruction are dropped, as Docker does.
      while (i + 1 < lines.length && /^\s*#/.test(lines[i])) i++;
      line += ` ${lines[i].trim()}`;
    }
    const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(line)!;
    out.push({ op: m[1].toUpperCase(), args: m[2].trim(), line: start + 1 });
  }
  return out;
}

/** `${VAR}`, `${VAR:-default}` and `$VAR` from the given scope. */
export function substitute(s: string, scope: Record<string, string>): string {
  return s.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (_, a, def, b) => scope[a ?? b] ?? def ?? '',
  );
}

/** KEY=value pairs (values may be double-quoted), or the legacy `KEY value` form. */
export function parsePairs(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    const [k, ...rest] = args.split(/\s+/);
    out[k] = rest.join(' ');
    return out;
  }
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
  for (const m of args.matchAll(re)) out[m[1]] = m[2].startsWith('"') ? JSON.parse(m[2]) : m[2];
  return out;
}

/** A .dockerignore as a predicate on context-relative paths (last matching rule wins, `!` re-includes). */
export function dockerignore(contextDir: string): (rel: string) => boolean {
  const file = path.join(contextDir, '.dockerignore');
  const rules = existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => {
          const negate = l.startsWith('!');
          const pattern = path.posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, ''));
          const re = pattern
            .split('/')
            .map((seg) =>
              seg === '**'
                ? '(?:.*)'
                : seg
                    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
                    .replace(/\*/g, '[^/]*')
                    .replace(/\?/g, '[^/]'),
            )
            .join('/')
            .replace(/\(\?:\.\*\)\//g, '(?:.*/)?');
          return { negate, re: new RegExp(`^${re}$`) };
        })
    : [];
  return (rel: string) => {
    // A rule that matches a parent directory excludes everything beneath it.
    const parts = rel.split('/');
    let ignored = false;
    for (const r of rules) {
      for (let k = 1; k <= parts.length; k++) {
        if (r.re.test(parts.slice(0, k).join('/'))) {
          ignored = !r.negate;
          break;
        }
      }
    }
    return ignored;
  };
}

function exec(args: string): string[] {
  const parsed = JSON.parse(args) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) throw new Error(`not an exec-form array: ${args}`);
  return parsed;
}

function copyFromContext(contextDir: string, src: string, dest: string, ignored: (rel: string) => boolean): void {
  const norm = path.posix.normalize(src);
  const rel = norm === '.' ? '' : norm.replace(/^\.\//, '');
  const abs = path.join(contextDir, rel);
  if (!existsSync(abs) || ignored(rel)) throw new Error(`COPY ${src}: not in the build context (missing or excluded by .dockerignore)`);
  if (statSync(abs).isDirectory()) {
    mkdirSync(dest, { recursive: true });
    for (const entry of readdirSync(abs)) {
      const childRel = rel ? `${rel}/${entry}` : entry;
      if (ignored(childRel)) continue;
      copyFromContext(contextDir, childRel, path.join(dest, entry), ignored);
    }
  } else {
    mkdirSync(path.dirname(dest), { recursive: true });
    cpSync(abs, dest);
  }
}

export interface ReplayOptions {
  contextDir: string;
  /** Where the stages' root directories are made. */
  workRoot: string;
  buildArgs?: Record<string, string>;
  /** Environment for RUN steps besides the stage's ENV and ARGs (PATH, HOME, ...). */
  baseEnv?: Record<string, string | undefined>;
  log?: (line: string) => void;
}

/** Runs every stage; returns them in order (the last is the image). */
export function replayDockerfile(opts: ReplayOptions): Stage[] {
  const instructions = parseDockerfile(readFileSync(path.join(opts.contextDir, 'Dockerfile'), 'utf8'));
  const ignored = dockerignore(opts.contextDir);
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  let stage: Stage | undefined;
  const inStage = (p: string) => path.join(stage!.root, path.posix.resolve(stage!.workdir, p));

  for (const ins of instructions) {
    const where = `Dockerfile:${ins.line} ${ins.op}`;
    opts.log?.(`${where} ${ins.args.slice(0, 100)}`);
    if (ins.op === 'ARG') {
      const [name, def] = ins.args.split(/=(.*)/s, 2);
      const value =
        opts.buildArgs?.[name] ??
        (def !== undefined ? substitute(def, stage ? { ...stage.args, ...stage.env } : globalArgs) : (globalArgs[name] ?? ''));
      if (stage) stage.args[name] = value;
      else globalArgs[name] = value;
      continue;
    }
    if (ins.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(substitute(ins.args, globalArgs));
      if (!m) throw new Error(`${where}: cannot read "${ins.args}"`);
      const name = m[2] ?? String(stages.length);
      const root = path.join(opts.workRoot, name);
      const parent = stages.find((s) => s.name === m[1]);
      mkdirSync(root, { recursive: true });
      if (parent) cpSync(parent.root, root, { recursive: true });
      stage = { name, from: m[1], root, workdir: parent?.workdir ?? '/', env: { ...(parent?.env ?? {}) }, args: {}, exposed: [] };
      stages.push(stage);
      continue;
    }
    if (!stage) throw new Error(`${where} before any FROM`);
    const scope = { ...globalArgs, ...stage.args, ...stage.env };
    switch (ins.op) {
      case 'WORKDIR':
        stage.workdir = path.posix.resolve(stage.workdir, substitute(ins.args, scope));
        mkdirSync(path.join(stage.root, stage.workdir), { recursive: true });
        break;
      case 'ENV':
        for (const [k, v] of Object.entries(parsePairs(ins.args))) stage.env[k] = substitute(v, scope);
        break;
      case 'COPY': {
        const words = substitute(ins.args, scope).split(/\s+/);
        let from: Stage | undefined;
        while (words[0].startsWith('--')) {
          const flag = words.shift()!;
          if (flag.startsWith('--from=')) {
            from = stages.find((s) => s.name === flag.slice(7));
            if (!from) throw new Error(`${where}: no stage named ${flag.slice(7)}`);
          }
        }
        const dest = words.pop()!;
        const intoDir = dest.endsWith('/') || words.length > 1;
        for (const src of words) {
          const target = intoDir ? path.join(inStage(dest), path.basename(src)) : inStage(dest);
          if (from) {
            const abs = path.join(from.root, path.posix.resolve(from.workdir, src));
            if (!existsSync(abs)) throw new Error(`${where}: ${src} does not exist in stage ${from.name}`);
            mkdirSync(path.dirname(target), { recursive: true });
            cpSync(abs, target, { recursive: true });
          } else copyFromContext(opts.contextDir, src, target, ignored);
        }
        break;
      }
      case 'RUN': {
        const cwd = path.join(stage.root, stage.workdir);
        try {
          execFileSync('bash', ['-euo', 'pipefail', '-c', ins.args], {
            cwd,
            env: { ...opts.baseEnv, ...stage.args, ...stage.env },
            stdio: ['ignore', 'pipe', 'pipe'],
            maxBuffer: 64 * 1024 * 1024,
          });
        } catch (err) {
          const e = err as { stdout?: Buffer; stderr?: Buffer; message: string };
          throw new Error(`${where} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: err });
        }
        break;
      }
      case 'USER':
        stage.user = substitute(ins.args, scope);
        break;
      case 'EXPOSE':
        stage.exposed.push(...ins.args.split(/\s+/));
        break;
      case 'HEALTHCHECK': {
        const m = /\bCMD\s+(\[.*\])$/s.exec(ins.args);
        if (!m) throw new Error(`${where}: only the exec form "HEALTHCHECK [options] CMD [...]" is replayed`);
        stage.healthcheck = exec(m[1]);
        break;
      }
      case 'STOPSIGNAL':
        stage.stopSignal = ins.args;
        break;
      case 'CMD':
        stage.cmd = exec(ins.args);
        break;
      default:
        throw new Error(`${where}: instruction not replayed`);
    }
  }
  if (stages.length === 0) throw new Error('Dockerfile has no FROM');
  return stages;
}
