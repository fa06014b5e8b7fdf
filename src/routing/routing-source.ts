/**
 * Where the A/B config comes from, and keeping it current: `models/routing.json`
 * (in Kubernetes, a ConfigMap mounted there), re-read when the file changes,
 * or a config set through the admin route on one instance. An invalid config
 * is refused with the reason and the one in force stays. Without any config,
 * every request goes to DEFAULT_MODEL (arm "default").
 */
import { readFile, stat } from 'node:fs/promises';
import { AbRouter, parseRoutingConfig, type RoutingConfig, RoutingConfigError } from './router';
import { type ModelSelector, type Selection, SingleModelSelector } from './selector';

export interface RoutingSourceOptions {
  file: string;
  defaultModel: string;
  /** Names of the models loaded now; arms must name one of them. */
  knownModels: () => readonly string[];
  log: { info(o: object, m?: string): void; warn(o: object, m?: string): void; error(o: object, m?: string): void };
  pollMs: number;
}

export interface RoutingStatus {
  source: 'none' | 'file' | 'admin';
  config?: RoutingConfig;
  appliedAt?: string;
  /** The last refused config and why; cleared when a config is applied. */
  lastError?: { source: 'file' | 'admin'; message: string; at: string };
}

export class RoutingSource implements ModelSelector {
  private selector: ModelSelector;
  private state: RoutingStatus = { source: 'none' };
  private timer?: NodeJS.Timeout;
  private lastFileStamp = '';

  constructor(private readonly opts: RoutingSourceOptions) {
    this.selector = new SingleModelSelector(opts.defaultModel);
  }

  select(req: { model?: string; version?: string; routingKey?: string }): Selection {
    return this.selector.select(req);
  }

  status(): RoutingStatus {
    return this.state;
  }

  /** Validate and put a config in force; throws RoutingConfigError (the old one stays). */
  apply(raw: unknown, source: 'file' | 'admin'): RoutingConfig {
    let config: RoutingConfig;
    try {
      config = parseRoutingConfig(raw, this.opts.knownModels());
    } catch (err) {
      if (err instanceof RoutingConfigError) {
        this.state = { ...this.state, lastError: { source, message: err.message, at: new Date().toISOString() } };
        this.opts.log.error({ source, error: err.message }, 'routing config refused; the previous one stays in force');
      }
      throw err;
    }
    this.selector = new AbRouter(config);
    this.state = { source, config, appliedAt: new Date().toISOString() };
    this.opts.log.info(
      {
        source,
        experiment: config.experiment,
        arms: config.arms.map((a) => `${a.name}=${a.model}:${a.weight.toFixed(3)}`),
        coverage: config.coverage,
      },
      'routing config applied',
    );
    return config;
  }

  /** Read the file if it changed since the last look (mtime, size). */
  async checkFile(): Promise<void> {
    let stamp: string;
    try {
      const s = await stat(this.opts.file);
      stamp = `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch {
      return; // no file: keep whatever is in force
    }
    if (stamp === this.lastFileStamp) return;
    this.lastFileStamp = stamp;
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(this.opts.file, 'utf8'));
    } catch (err) {
      const message = `${this.opts.file} is not valid JSON: ${(err as Error).message}`;
      this.state = { ...this.state, lastError: { source: 'file', message, at: new Date().toISOString() } };
      this.opts.log.error({ file: this.opts.file, error: message }, 'routing config refused; the previous one stays in force');
      return;
    }
    try {
      this.apply(raw, 'file');
    } catch (err) {
      if (!(err instanceof RoutingConfigError)) throw err;
    }
  }

  /** Load the file now and watch it (polling: ConfigMap updates swap symlinks, which fs.watch misses). */
  async start(): Promise<void> {
    await this.checkFile();
    this.timer = setInterval(() => {
      this.checkFile().catch((err) => this.opts.log.error({ error: (err as Error).message }, 'routing config check failed'));
    }, this.opts.pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
