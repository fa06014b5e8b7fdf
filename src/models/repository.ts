/**
 * The model repository over MODEL_DIR: `<name>/<version>/manifest.json`.
 *
 * Every version found is checksum-verified and loaded; requests get the
 * highest loaded version unless they name one. `reload()` (SIGHUP, admin
 * route) loads new or changed versions first and only then swaps them in;
 * a replaced version is disposed once its in-flight requests have finished.
 * A version that fails to load leaves whatever was serving in place and is
 * reported in `status()`.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ServiceError } from '../core/errors';
import { MODEL_NAME, VERSION } from '../core/rules';
import { loadManifest } from './manifest';
import { LoadedModel } from './model';
import type { RuntimeFactory } from './runtime';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** A loaded version plus the bookkeeping that lets it retire safely. */
class Slot {
  inFlight = 0;
  retired = false;
  disposed = false;

  constructor(
    readonly model: LoadedModel,
    readonly fingerprint: string,
    readonly loadedAt: Date,
  ) {}

  async disposeIfIdle(): Promise<void> {
    if (this.retired && this.inFlight === 0 && !this.disposed) {
      this.disposed = true;
      await this.model.runtime.dispose();
    }
  }
}

export interface Lease {
  readonly model: LoadedModel;
  release(): void;
}

export interface LoadFailure {
  name: string;
  version: string;
  error: string;
  at: string;
}

export interface ReloadReport {
  loaded: string[];
  unchanged: string[];
  removed: string[];
  failed: LoadFailure[];
}

export interface ModelVersionStatus {
  name: string;
  version: string;
  kind: string;
  state: 'READY';
  format: string;
  backend: string;
  parameters: number;
  labels: string[];
  loadedAt: string;
  testAccuracy?: number;
  inFlight: number;
}

export interface RepositoryOptions {
  dir: string;
  factory: RuntimeFactory;
  log: Logger;
}

export class ModelRepository {
  /** name -> version -> slot; replaced wholesale on reload, never mutated in place. */
  private slots = new Map<string, Map<string, Slot>>();
  private failures: LoadFailure[] = [];
  private reloading: Promise<ReloadReport> = Promise.resolve({ loaded: [], unchanged: [], removed: [], failed: [] });
  private lastReload?: ReloadReport;

  constructor(private readonly opts: RepositoryOptions) {}

  /** Load (or reload) everything under the model directory. Calls are serialized. */
  reload(): Promise<ReloadReport> {
    this.reloading = this.reloading.then(
      () => this.doReload(),
      () => this.doReload(),
    );
    return this.reloading;
  }

  private async scan(): Promise<Array<{ name: string; version: string; dir: string }>> {
    const found: Array<{ name: string; version: string; dir: string }> = [];
    let names: string[];
    try {
      names = (await readdir(this.opts.dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch (err) {
      throw new Error(`cannot read model directory ${this.opts.dir}: ${(err as Error).message}`, { cause: err });
    }
    for (const name of names.filter((n) => MODEL_NAME.test(n)).sort()) {
      const versions = (await readdir(path.join(this.opts.dir, name), { withFileTypes: true }))
        .filter((d) => d.isDirectory() && VERSION.test(d.name))
        .map((d) => d.name);
      for (const version of versions) found.push({ name, version, dir: path.join(this.opts.dir, name, version) });
    }
    return found;
  }

  private async fingerprint(dir: string): Promise<string> {
    try {
      return createHash('sha256')
        .update(await readFile(path.join(dir, 'manifest.json')))
        .digest('hex');
    } catch {
      return 'unreadable';
    }
  }

  private async loadOne(name: string, version: string, dir: string, fingerprint: string): Promise<Slot> {
    const manifest = await loadManifest(dir);
    if (manifest.name !== name || manifest.version !== version) {
      throw new Error(`manifest says ${manifest.name}/${manifest.version} but lives in ${name}/${version}`);
    }
    const runtime = await this.opts.factory.load(dir, manifest);
    return new Slot(new LoadedModel(manifest, runtime, dir), fingerprint, new Date());
  }

  private async doReload(): Promise<ReloadReport> {
    const report: ReloadReport = { loaded: [], unchanged: [], removed: [], failed: [] };
    const next = new Map<string, Map<string, Slot>>();
    const keep = (name: string, version: string, slot: Slot) => {
      if (!next.has(name)) next.set(name, new Map());
      next.get(name)!.set(version, slot);
    };
    // Every changed version loads at once (each onto its own inference
    // thread); the outcomes are then taken in directory order.
    const found = await Promise.all(
      (await this.scan()).map(async ({ name, version, dir }) => {
        const current = this.slots.get(name)?.get(version);
        const fp = await this.fingerprint(dir);
        const unchanged = current !== undefined && current.fingerprint === fp;
        const loading = unchanged ? undefined : this.loadOne(name, version, dir, fp);
        loading?.catch(() => {}); // its outcome is read below, in order
        return { name, version, current, loading };
      }),
    );
    for (const { name, version, current, loading } of found) {
      const id = `${name}/${version}`;
      if (!loading) {
        keep(name, version, current!);
        report.unchanged.push(id);
        continue;
      }
      try {
        keep(name, version, await loading);
        report.loaded.push(id);
        this.opts.log.info({ model: name, version, backend: this.opts.factory.backend }, 'model loaded');
      } catch (err) {
        const failure = { name, version, error: (err as Error).message, at: new Date().toISOString() };
        report.failed.push(failure);
        this.opts.log.error(
          { model: name, version, err: failure.error },
          current ? 'model reload failed; previous copy keeps serving' : 'model load failed',
        );
        if (current) keep(name, version, current);
      }
    }
    const previous = this.slots;
    this.slots = next;
    for (const [name, versions] of previous) {
      for (const [version, slot] of versions) {
        if (next.get(name)?.get(version) === slot) continue;
        if (!next.get(name)?.has(version)) report.removed.push(`${name}/${version}`);
        slot.retired = true;
        await slot.disposeIfIdle();
      }
    }
    this.failures = report.failed;
    this.lastReload = report;
    return report;
  }

  /** Take a model for one request; release() when done (also on error). */
  acquire(name: string, version?: string): Lease {
    const versions = this.slots.get(name);
    if (!versions || versions.size === 0) {
      throw new ServiceError('NOT_FOUND', `unknown model "${name}"; loaded: ${this.names().join(', ') || 'none'}`);
    }
    let slot: Slot | undefined;
    if (version !== undefined) {
      slot = versions.get(version);
      if (!slot)
        throw new ServiceError(
          'NOT_FOUND',
          `model "${name}" has no loaded version "${version}"; loaded: ${[...versions.keys()].join(', ')}`,
        );
    } else {
      slot = versions.get(this.latestVersion(versions));
    }
    const s = slot!;
    s.inFlight++;
    let released = false;
    return {
      model: s.model,
      release: () => {
        if (released) return;
        released = true;
        s.inFlight--;
        void s.disposeIfIdle();
      },
    };
  }

  private latestVersion(versions: Map<string, Slot>): string {
    return [...versions.keys()].reduce((a, b) => (Number(b) > Number(a) ? b : a));
  }

  has(name: string): boolean {
    return (this.slots.get(name)?.size ?? 0) > 0;
  }

  names(): string[] {
    return [...this.slots.keys()].filter((n) => this.has(n)).sort();
  }

  /** The highest loaded version of a model (what a request without a version gets). */
  latest(name: string): LoadedModel | undefined {
    const versions = this.slots.get(name);
    if (!versions || versions.size === 0) return undefined;
    return versions.get(this.latestVersion(versions))!.model;
  }

  isEmpty(): boolean {
    return this.names().length === 0;
  }

  status(): { models: ModelVersionStatus[]; failures: LoadFailure[]; lastReload?: ReloadReport } {
    const models: ModelVersionStatus[] = [];
    for (const [name, versions] of [...this.slots].sort(([a], [b]) => a.localeCompare(b))) {
      for (const [version, slot] of [...versions].sort(([a], [b]) => Number(a) - Number(b))) {
        const m = slot.model.manifest;
        models.push({
          name,
          version,
          kind: m.kind,
          state: 'READY',
          format: slot.model.runtime.format,
          backend: slot.model.runtime.backend,
          parameters: m.parameters,
          labels: m.labels,
          loadedAt: slot.loadedAt.toISOString(),
          testAccuracy: m.evaluation?.accuracy,
          inFlight: slot.inFlight,
        });
      }
    }
    return { models, failures: this.failures, lastReload: this.lastReload };
  }

  /** Retire everything; runtimes are disposed as their last requests finish. */
  async close(): Promise<void> {
    await this.reloading.catch(() => undefined);
    const all = [...this.slots.values()].flatMap((v) => [...v.values()]);
    this.slots = new Map();
    for (const slot of all) {
      slot.retired = true;
      await slot.disposeIfIdle();
    }
  }
}
