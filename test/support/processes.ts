/** Starting the built service and a real Prometheus as child processes, for the end-to-end tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT } from '../helpers';
import { pollUntil } from './wait';

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface Child {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

function start(cmd: string, args: string[], env: Record<string, string | undefined>, cwd = ROOT): Child {
  let out = '';
  const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    output: () => out,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/**
 * Until another process answers its readiness probe. It offers no event to
 * wait on (the service logs "ready" only at LOG_LEVEL info), so this asks
 * until it is ready; no assertion depends on how long that took.
 */
async function until(what: string, child: Child, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  try {
    await pollUntil(`${what} ready`, probe, {
      timeoutMs,
      stop: () => (child.child.exitCode !== null ? `exited during start` : undefined),
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${child.output()}`, { cause: err });
  }
}

export interface ServiceProcess extends Child {
  http: string;
  grpcPort: number;
  metricsPort: number;
}

/**
 * The built service on free ports, started as the container runs it (`node
 * dist/src/main.js`) or, with `via: 'npm'`, as the README does (`npm start`).
 */
async function startService(via: 'node' | 'npm', env: Record<string, string>, logLevel: string): Promise<ServiceProcess> {
  const [httpPort, grpcPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const [cmd, args] = via === 'node' ? [process.execPath, ['dist/src/main.js']] : ['npm', ['start', '--silent']];
  const child = start(cmd, args, {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    HOST: '127.0.0.1',
    HTTP_PORT: String(httpPort),
    GRPC_PORT: String(grpcPort),
    METRICS_PORT: String(metricsPort),
    LOG_LEVEL: logLevel,
    ...env,
  });
  const http = `http://127.0.0.1:${httpPort}`;
  await until(`the service (${via})`, child, async () => (await fetch(`${http}/readyz`)).status === 200);
  return Object.assign(child, { http, grpcPort, metricsPort });
}

/** `node dist/src/main.js`, as the container runs it, on free ports. */
export function startServiceProcess(env: Record<string, string> = {}): Promise<ServiceProcess> {
  return startService('node', env, 'warn');
}

/** `npm start` from the repository, as the README starts the service, on free ports (logging at info). */
export function startWithNpm(env: Record<string, string> = {}): Promise<ServiceProcess> {
  return startService('npm', env, 'info');
}

export interface PrometheusProcess extends Child {
  url: string;
}

/**
 * Debian's Prometheus server scraping `targets` every second and evaluating
 * `ruleFiles` every second, with its data in `dir`.
 */
export async function startPrometheus(
  dir: string,
  opts: { job: string; targets: string[]; ruleFiles: string[] },
): Promise<PrometheusProcess> {
  const port = await freePort();
  const config = path.join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
      rule_files: opts.ruleFiles,
      scrape_configs: [{ job_name: opts.job, static_configs: [{ targets: opts.targets }] }],
    }),
  );
  const child = start(
    'prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { PATH: process.env.PATH },
    dir,
  );
  const url = `http://127.0.0.1:${port}`;
  await until('prometheus', child, async () => (await fetch(`${url}/-/ready`)).status === 200);
  return Object.assign(child, { url });
}

export interface QueryResult {
  status: 'success' | 'error';
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

export async function query(prometheusUrl: string, expr: string): Promise<QueryResult> {
  const res = await fetch(`${prometheusUrl}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: expr }) });
  return (await res.json()) as QueryResult;
}
