/**
 * The replay loop: sends samples at a fixed rate (open loop, capped by the
 * requests in flight) with routing keys, sends the true label back for a
 * share of the answers after a delay, and switches on drift from a request
 * index or a moment. Counts what the service answered, so the summary says
 * what happened without asking the service.
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { ServiceClient } from './clients';
import { CallError } from './clients';
import { hasDrift, type ReplayOptions } from './options';
import { encodeCatalogPhoto, encodePng, perturb, seededRandom } from './perturb';
import { classWeights, type Sample, type SampleSource, SampleStream } from './source';

export type Phase = 'clean' | 'drifted';

export interface ArmTally {
  model: string;
  arm: string;
  phase: Phase;
  answered: number;
  /** Of those, answered without a label (the service abstained): not counted as right or wrong. */
  abstained: number;
  /** Labelled answers whose top-1 matched the true label (known to the replay, whether or not feedback was sent). */
  correct: number;
  meanConfidence: number;
}

export interface ReplayProgress {
  elapsedSeconds: number;
  sent: number;
  answered: number;
  failed: number;
  feedbackSent: number;
  drifting: boolean;
  ratePerSecond: number;
  accuracy: number | null;
}

export interface ReplaySummary {
  transport: string;
  target: string;
  source: string;
  seconds: number;
  sent: number;
  answered: number;
  failed: number;
  errors: Record<string, number>;
  ratePerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number } | null;
  /** Index of the first drifted request (null: no drift was injected). */
  driftStartedAt: number | null;
  drifted: number;
  arms: ArmTally[];
  feedback: { sent: number; accepted: number; duplicates: number; failed: number; errors: Record<string, number> };
}

export interface ReplayDeps {
  client: ServiceClient;
  source: SampleSource;
  sourceName: string;
  labels: readonly string[];
  onProgress?: (p: ReplayProgress) => void;
  progressEveryMs?: number;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const count = (tally: Record<string, number>, key: string) => (tally[key] = (tally[key] ?? 0) + 1);

function contentTypeOf(file: string): string {
  const ext = file.slice(file.lastIndexOf('.') + 1).toLowerCase();
  return ext === 'jpg' ? 'image/jpeg' : `image/${ext === 'tif' ? 'tiff' : ext}`;
}

async function encode(
  sample: Sample,
  drifting: boolean,
  opts: ReplayOptions,
  noiseSeed: number,
): Promise<{ bytes: Buffer; contentType: string }> {
  if (!drifting && sample.file) return { bytes: await readFile(sample.file), contentType: contentTypeOf(sample.file) };
  let img = await sample.pixels();
  if (drifting) img = await perturb(img, opts.drift, seededRandom(noiseSeed));
  if (drifting && opts.drift.catalog) return { bytes: await encodeCatalogPhoto(img), contentType: 'image/jpeg' };
  return { bytes: await encodePng(img), contentType: 'image/png' };
}

export async function replay(opts: ReplayOptions, deps: ReplayDeps): Promise<ReplaySummary> {
  const { client, source } = deps;
  const random = seededRandom(opts.seed);
  const driftOn = hasDrift(opts.drift);
  const clean = new SampleStream(source, random);
  const drifted = new SampleStream(source, random, opts.drift.mix ? classWeights(opts.drift.mix, deps.labels) : undefined);

  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const feedbackErrors: Record<string, number> = {};
  const arms = new Map<string, ArmTally & { confidenceSum: number }>();
  let sent = 0;
  let answered = 0;
  let failed = 0;
  let driftStartedAt: number | null = null;
  let driftedCount = 0;
  const fb = { sent: 0, accepted: 0, duplicates: 0, failed: 0 };

  const inFlight = new Set<Promise<void>>();
  const feedbackPending = new Set<Promise<void>>();
  const timers = new Set<NodeJS.Timeout>();
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;

  const progress = () => {
    const s = elapsed();
    let right = 0;
    let n = 0;
    for (const a of arms.values()) {
      right += a.correct;
      n += a.answered - a.abstained;
    }
    deps.onProgress?.({
      elapsedSeconds: s,
      sent,
      answered,
      failed,
      feedbackSent: fb.sent,
      drifting: driftStartedAt !== null,
      ratePerSecond: s > 0 ? answered / s : 0,
      accuracy: n ? right / n : null,
    });
  };
  const ticker = deps.onProgress ? setInterval(progress, deps.progressEveryMs ?? 1000) : undefined;

  const sendFeedback = (predictionId: string, label: number) => {
    const p = client
      .feedback(predictionId, label)
      .then((r) => {
        if (r.accepted) fb.accepted++;
        else fb.duplicates++;
      })
      .catch((err: unknown) => {
        fb.failed++;
        count(feedbackErrors, err instanceof CallError ? err.code : 'CLIENT');
      })
      .finally(() => feedbackPending.delete(p));
    feedbackPending.add(p);
  };

  const one = async (i: number, sample: Sample, drifting: boolean, key: string, withFeedback: boolean) => {
    let payload: { bytes: Buffer; contentType: string };
    try {
      payload = await encode(sample, drifting, opts, opts.seed * 1_000_003 + i);
    } catch (err) {
      failed++;
      count(errors, 'CLIENT_ENCODE');
      return;
    }
    const t0 = performance.now();
    try {
      const a = await client.classify(payload.bytes, payload.contentType, key);
      latencies.push(performance.now() - t0);
      answered++;
      const phase: Phase = drifting ? 'drifted' : 'clean';
      const id = `${a.model}\n${a.arm}\n${phase}`;
      let t = arms.get(id);
      if (!t)
        arms.set(
          id,
          (t = { model: a.model, arm: a.arm, phase, answered: 0, abstained: 0, correct: 0, meanConfidence: 0, confidenceSum: 0 }),
        );
      t.answered++;
      t.confidenceSum += a.confidence;
      if (a.abstained) t.abstained++;
      else if (a.labelIndex === sample.label) t.correct++;
      if (withFeedback) {
        fb.sent++;
        if (opts.feedbackDelaySeconds === 0) sendFeedback(a.predictionId, sample.label);
        else {
          const timer = setTimeout(() => {
            timers.delete(timer);
            sendFeedback(a.predictionId, sample.label);
          }, opts.feedbackDelaySeconds * 1000);
          timers.add(timer);
        }
      }
    } catch (err) {
      failed++;
      count(errors, err instanceof CallError ? err.code : 'CLIENT');
    }
  };

  try {
    for (let i = 0; i < opts.count; i++) {
      if (opts.durationSeconds > 0 && elapsed() >= opts.durationSeconds) break;
      if (opts.rate > 0) {
        const due = started + (i / opts.rate) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      while (inFlight.size >= opts.concurrency) await Promise.race(inFlight);
      const drifting =
        driftOn && (opts.driftAfterSeconds !== undefined ? elapsed() >= opts.driftAfterSeconds : i >= (opts.driftFromRequest ?? 0));
      if (drifting) {
        driftStartedAt ??= i;
        driftedCount++;
      }
      // Draw everything random here, in request order, so a seed replays the same traffic.
      const sample = drifting ? drifted.sample(opts.offset + driftedCount - 1) : clean.sample(opts.offset + i - driftedCount);
      const key = `customer-${Math.floor(random() * opts.keys)}`;
      const withFeedback = random() < opts.feedbackShare;
      sent++;
      const p: Promise<void> = one(i, sample, drifting, key, withFeedback).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await Promise.all(inFlight);
    // Labels not yet due go out at their time: the delay is part of the scenario.
    while (timers.size > 0 || feedbackPending.size > 0) {
      await Promise.race([...feedbackPending, new Promise((r) => setTimeout(r, 50))]);
    }
  } finally {
    if (ticker) clearInterval(ticker);
  }
  progress();

  const seconds = elapsed();
  latencies.sort((a, b) => a - b);
  return {
    transport: opts.transport,
    target: opts.target,
    source: deps.sourceName,
    seconds,
    sent,
    answered,
    failed,
    errors,
    ratePerSecond: seconds > 0 ? answered / seconds : 0,
    latencyMs: latencies.length
      ? {
          p50: percentile(latencies, 0.5),
          p95: percentile(latencies, 0.95),
          p99: percentile(latencies, 0.99),
          max: latencies[latencies.length - 1],
        }
      : null,
    driftStartedAt,
    drifted: driftedCount,
    arms: [...arms.values()]
      .map(({ confidenceSum, ...t }) => ({ ...t, meanConfidence: t.answered ? confidenceSum / t.answered : 0 }))
      .sort((a, b) => a.phase.localeCompare(b.phase) || a.arm.localeCompare(b.arm)),
    feedback: { ...fb, errors: feedbackErrors },
  };
}
