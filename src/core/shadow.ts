/**
 * Shadow traffic: a sampled share of served batches mirrored to the shadow
 * model named in the routing config, after the answer is on its way. Only
 * whether the shadow's top-1 agrees with the served one is kept (metrics and
 * the monitor). It never delays or changes an answer; when shadow calls
 * pile up, new ones are dropped and counted.
 */
import type { LoadedModel } from '../models/model';
import type { ModelRepository } from '../models/repository';
import type { ServiceMetrics } from '../monitoring/metrics';
import type { Monitor } from '../monitoring/monitor';

/** Shadow batches running at once; more are dropped (and counted) rather than queued. */
const MAX_SHADOW_IN_FLIGHT = 2;

export interface ShadowConfig {
  model: string;
  version?: string;
  fraction: number;
}

export interface ShadowDeps {
  repository: ModelRepository;
  metrics: ServiceMetrics;
  monitor: Monitor;
  /** The shadow in force (from the routing config), if any. */
  config: () => ShadowConfig | undefined;
  random?: () => number;
}

export class ShadowTraffic {
  private inFlight = 0;

  constructor(private readonly deps: ShadowDeps) {}

  /** Maybe mirror a served batch: its raw pixels (all items must have them) and the served probabilities. */
  offer(served: LoadedModel, pixels: (ArrayLike<number> | undefined)[], probs: Float32Array): void {
    const shadow = this.deps.config();
    if (!shadow || shadow.model === served.name || pixels.length === 0 || pixels.some((p) => !p)) return;
    if ((this.deps.random ?? Math.random)() >= shadow.fraction) return;
    if (this.inFlight >= MAX_SHADOW_IN_FLIGHT) {
      this.deps.metrics.shadowPredictions.inc({ model: shadow.model, outcome: 'dropped' }, pixels.length);
      return;
    }
    const k = served.numClasses;
    const servedTop = pixels.map((_, j) => argmaxRow(probs, j * k, k));
    this.inFlight++;
    setImmediate(() => {
      void this.run(shadow, served.name, pixels as ArrayLike<number>[], servedTop).finally(() => this.inFlight--);
    });
  }

  private async run(shadow: ShadowConfig, servedModel: string, pixels: ArrayLike<number>[], servedTop: number[]): Promise<void> {
    const { repository, metrics, monitor } = this.deps;
    let lease;
    try {
      lease = repository.acquire(shadow.model, shadow.version);
    } catch {
      metrics.shadowPredictions.inc({ model: shadow.model, outcome: 'error' }, pixels.length);
      return;
    }
    try {
      const m = lease.model;
      const input = new Float32Array(pixels.length * m.pixelsPerImage);
      pixels.forEach((p, j) => m.normalizeInto(p, input, j));
      const probs = await m.predict(input, pixels.length);
      let agree = 0;
      servedTop.forEach((t, j) => {
        if (argmaxRow(probs, j * m.numClasses, m.numClasses) === t) agree++;
      });
      metrics.shadowPredictions.inc({ model: m.name, outcome: 'agree' }, agree);
      metrics.shadowPredictions.inc({ model: m.name, outcome: 'disagree' }, pixels.length - agree);
      monitor.shadowCompared(servedModel, m.name, pixels.length, agree);
    } catch {
      metrics.shadowPredictions.inc({ model: shadow.model, outcome: 'error' }, pixels.length);
    } finally {
      lease.release();
    }
  }
}

export function argmaxRow(xs: Float32Array, start: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (xs[start + i] > xs[start + best]) best = i;
  return best;
}
