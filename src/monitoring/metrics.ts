/**
 * Prometheus metrics (prefix `classifier_`) on an injected registry, with
 * prom-client's default Node.js process metrics under their standard names.
 *
 * Counters and histograms are updated as traffic flows; every gauge is
 * computed at scrape time from the Monitor's windows and the routing config,
 * so all of them come from real traffic. Fleet-wide figures are sums of the
 * counters over pods in PromQL; per-pod gauges describe that pod's share.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AbReport } from './ab-report';
import type { DriftReport } from './drift';
import type { AccuracyFigures, WindowName } from './monitor';

export interface MetricsSources {
  report(): {
    experiment: AbReport | null;
    accuracy: Record<string, { model: string; arm: string; figures: AccuracyFigures }[]>;
    drift: Record<string, { model: string; report: DriftReport }[]>;
    shadow: Record<string, { served: string; shadow: string; compared: number; agreement: number | null }[]>;
  };
  models(): { name: string; version: string; format: string; backend: string; parameters: number }[];
  /** Versions the last load or reload refused (and that are therefore not serving from that copy). */
  loadFailures(): { name: string; version: string }[];
  weights(): { arm: string; model: string; weight: number }[];
  /** Each loaded model's reference distributions (from its manifest). */
  references(): { model: string; quantiles: readonly number[]; labels: readonly string[]; classFrequencies: readonly number[] }[];
  /** Each loaded model's out-of-distribution threshold and the share of in-distribution inputs it flags by design. */
  oodThresholds?(): { model: string; version: string; threshold: number; falseFlagRate: number }[];
  /** The payload log's queues, per sink (absent when payload logging is off). */
  payloadLog?(): Record<string, { pending: number; inFlight: number }>;
}

/** The reference CDF at x, from its quantile grid (quantile k of m is at probability k/(m-1)), interpolated. */
export function referenceCdf(quantiles: readonly number[], x: number): number {
  const m = quantiles.length;
  if (x < quantiles[0]) return 0;
  if (x >= quantiles[m - 1]) return 1;
  let k = 0;
  while (k < m - 2 && quantiles[k + 1] <= x) k++;
  const span = quantiles[k + 1] - quantiles[k];
  const within = span > 0 ? (x - quantiles[k]) / span : 1;
  return (k + within) / (m - 1);
}

/** Sub-millisecond to 1 s (and a little beyond). */
const DURATION_BUCKETS = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5];
/** Fine near 1, where a calibrated classifier puts most of its answers. */
const CONFIDENCE_BUCKETS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 1];
/** OOD scores are standardized (z-scale) combinations: in-distribution inputs sit near 0-3, far ones well above. */
const OOD_BUCKETS = [-2, -1, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 8, 10, 15, 20, 30, 50];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'transport' | 'endpoint' | 'model' | 'arm' | 'code'>;
  readonly requestDuration: Histogram<'transport' | 'endpoint' | 'arm' | 'code'>;
  readonly inferenceDuration: Histogram<'model' | 'version'>;
  readonly batchSize: Histogram<'model' | 'version'>;
  readonly confidence: Histogram<'model' | 'arm'>;
  readonly predictions: Counter<'model' | 'arm' | 'label'>;
  readonly feedback: Counter<'model' | 'arm' | 'outcome'>;
  readonly oodScore: Histogram<'model' | 'arm'>;
  readonly oodFlagged: Counter<'model' | 'arm'>;
  readonly abstentions: Counter<'model' | 'arm' | 'reason'>;
  readonly payloadLogRecords: Counter<'sink' | 'outcome'>;
  readonly feedbackRejected: Counter<'outcome'>;
  readonly shadowPredictions: Counter<'model' | 'outcome'>;
  readonly modelLoadFailures: Counter<'model' | 'version'>;

  constructor(sources: MetricsSources, opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics !== false) {
      // prom-client's standard names (process_cpu_seconds_total,
      // nodejs_heap_size_used_bytes, ...), as Node.js dashboards and alerts expect.
      collectDefaultMetrics({ register: this.registry });
      // Gauges named like counters (promtool check metrics rejects them); the
      // same figures remain, by type, in nodejs_active_{handles,requests,resources}.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
        this.registry.removeSingleMetric(name);
      }
    }
    this.requests = new Counter({
      name: 'classifier_requests_total',
      help: 'Requests answered, by transport, endpoint, model, arm and result code (OK or the error code).',
      labelNames: ['transport', 'endpoint', 'model', 'arm', 'code'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'classifier_request_duration_seconds',
      help: 'Time from request to answer, by transport, endpoint, A/B arm and code.',
      labelNames: ['transport', 'endpoint', 'arm', 'code'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.inferenceDuration = new Histogram({
      name: 'classifier_inference_duration_seconds',
      help: 'Model call time per batch.',
      labelNames: ['model', 'version'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.batchSize = new Histogram({
      name: 'classifier_batch_size',
      help: 'Images per model call.',
      labelNames: ['model', 'version'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.confidence = new Histogram({
      name: 'classifier_confidence',
      help: 'Calibrated top-1 confidence of each prediction.',
      labelNames: ['model', 'arm'],
      buckets: CONFIDENCE_BUCKETS,
      registers,
    });
    this.predictions = new Counter({
      name: 'classifier_predictions_total',
      help: 'Predictions by top-1 class (abstained ones included: classifier_abstentions_total counts those).',
      labelNames: ['model', 'arm', 'label'],
      registers,
    });
    this.feedback = new Counter({
      name: 'classifier_feedback_total',
      help: 'Ground-truth feedback counted, by outcome (correct, incorrect; abstained: on a prediction answered without a label) and duplicates answered but not counted.',
      labelNames: ['model', 'arm', 'outcome'],
      registers,
    });
    this.oodScore = new Histogram({
      name: 'classifier_ood_score',
      help: "Out-of-distribution score of each prediction (higher is more unusual; flagged above the model's threshold).",
      labelNames: ['model', 'arm'],
      buckets: OOD_BUCKETS,
      registers,
    });
    this.oodFlagged = new Counter({
      name: 'classifier_ood_flagged_total',
      help: 'Predictions whose input was flagged out-of-distribution.',
      labelNames: ['model', 'arm'],
      registers,
    });
    this.abstentions = new Counter({
      name: 'classifier_abstentions_total',
      help: 'Predictions answered without a label, by reason (out-of-distribution, low-confidence).',
      labelNames: ['model', 'arm', 'reason'],
      registers,
    });
    this.payloadLogRecords = new Counter({
      name: 'classifier_payload_log_records_total',
      help: 'Prediction payloads offered to each payload-log sink (http, file), by outcome: sent, or dropped for queue_full, sink_error, timeout, shutdown.',
      labelNames: ['sink', 'outcome'],
      registers,
    });
    this.shadowPredictions = new Counter({
      name: 'classifier_shadow_predictions_total',
      help: 'Images mirrored to the shadow model, by outcome: agree or disagree with the served top-1, dropped (too many in flight), error.',
      labelNames: ['model', 'outcome'],
      registers,
    });
    this.modelLoadFailures = new Counter({
      name: 'classifier_model_load_failures_total',
      help: 'Model versions refused at load or reload (bad manifest, checksum mismatch, runtime error); what was serving keeps serving.',
      labelNames: ['model', 'version'],
      registers,
    });
    this.feedbackRejected = new Counter({
      name: 'classifier_feedback_rejected_total',
      help: 'Feedback refused, by reason (malformed, tampered, expired, bad_label, unknown_model).',
      labelNames: ['outcome'],
      registers,
    });

    // ---- gauges computed at scrape time -------------------------------
    let snapshot: ReturnType<MetricsSources['report']> | undefined;
    let snapshotAt = 0;
    const report = () => {
      // One report per scrape, shared by the gauges' collect() calls.
      if (!snapshot || Date.now() - snapshotAt > 250) {
        snapshot = sources.report();
        snapshotAt = Date.now();
      }
      return snapshot;
    };
    const gauge = <L extends string>(name: string, help: string, labelNames: L[], collect: (g: Gauge<L>) => void) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          collect(this);
        },
      });
    const windows = (): WindowName[] => ['1h', '24h'];

    gauge(
      'classifier_ood_expected_flag_ratio',
      "Share of in-distribution inputs each model's out-of-distribution threshold flags by design (the rate it was fitted at on validation).",
      ['model', 'version'],
      (g) => {
        for (const t of sources.oodThresholds?.() ?? []) g.set({ model: t.model, version: t.version }, t.falseFlagRate);
      },
    );
    gauge('classifier_payload_log_queue_depth', 'Payload-log records waiting or being written, per sink.', ['sink'], (g) => {
      for (const [sink, c] of Object.entries(sources.payloadLog?.() ?? {})) g.set({ sink }, c.pending + c.inFlight);
    });
    gauge('classifier_accuracy_observed_ratio', 'Accuracy from feedback over the window.', ['model', 'arm', 'window'], (g) => {
      for (const w of windows())
        for (const a of report().accuracy[w] ?? [])
          if (a.figures.observed !== null) g.set({ model: a.model, arm: a.arm, window: w }, a.figures.observed);
    });
    gauge('classifier_feedback_window_samples', 'Labels received over the window.', ['model', 'arm', 'window'], (g) => {
      for (const w of windows())
        for (const a of report().accuracy[w] ?? []) g.set({ model: a.model, arm: a.arm, window: w }, a.figures.labelled);
    });
    gauge(
      'classifier_accuracy_estimated_ratio',
      'Accuracy expected from calibrated confidence over the window, before labels.',
      ['model', 'window'],
      (g) => {
        for (const w of windows())
          for (const d of report().drift[w] ?? [])
            if (d.report.estimatedAccuracy !== null) g.set({ model: d.model, window: w }, d.report.estimatedAccuracy);
      },
    );
    gauge('classifier_prediction_window_samples', 'Predictions over the window.', ['model', 'window'], (g) => {
      for (const w of windows()) for (const d of report().drift[w] ?? []) g.set({ model: d.model, window: w }, d.report.samples);
    });
    gauge(
      'classifier_drift_score',
      'Drift of live predictions against the reference: psi and js (confidence), ks (largest CDF gap).',
      ['model', 'signal', 'window'],
      (g) => {
        for (const w of windows())
          for (const d of report().drift[w] ?? []) {
            const r = d.report;
            if (r.psi !== null) g.set({ model: d.model, signal: 'psi', window: w }, r.psi);
            if (r.jsDistance !== null) g.set({ model: d.model, signal: 'js', window: w }, r.jsDistance);
            if (r.ksStatistic !== null) g.set({ model: d.model, signal: 'ks', window: w }, r.ksStatistic);
          }
      },
    );
    gauge(
      'classifier_drift_p_value',
      'Drift test p-values: ks (confidence) and class_mix (chi-square).',
      ['model', 'signal', 'window'],
      (g) => {
        for (const w of windows())
          for (const d of report().drift[w] ?? []) {
            if (d.report.ksPValue !== null) g.set({ model: d.model, signal: 'ks', window: w }, d.report.ksPValue);
            if (d.report.classChiSquarePValue !== null)
              g.set({ model: d.model, signal: 'class_mix', window: w }, d.report.classChiSquarePValue);
          }
      },
    );
    gauge(
      'classifier_drift_detected',
      '1 when drift is flagged over the window (enough samples and a threshold crossed).',
      ['model', 'window'],
      (g) => {
        for (const w of windows()) for (const d of report().drift[w] ?? []) g.set({ model: d.model, window: w }, d.report.drift ? 1 : 0);
      },
    );
    gauge('classifier_ab_arm_requests', 'Requests assigned to each arm in the experiment (this replica).', ['arm', 'model'], (g) => {
      for (const a of report().experiment?.arms ?? []) g.set({ arm: a.name, model: a.model }, a.assigned);
    });
    gauge('classifier_ab_arm_labelled', 'Labels received for each arm in the experiment (this replica).', ['arm', 'model'], (g) => {
      for (const a of report().experiment?.arms ?? []) g.set({ arm: a.name, model: a.model }, a.labelled);
    });
    gauge(
      'classifier_ab_arm_accuracy_ratio',
      'Accuracy of each arm in the experiment, with its 95% Wilson bounds (signal: estimate, low, high).',
      ['arm', 'model', 'signal'],
      (g) => {
        for (const a of report().experiment?.arms ?? []) {
          if (a.accuracy === null) continue;
          g.set({ arm: a.name, model: a.model, signal: 'estimate' }, a.accuracy);
          g.set({ arm: a.name, model: a.model, signal: 'low' }, a.low);
          g.set({ arm: a.name, model: a.model, signal: 'high' }, a.high);
        }
      },
    );
    gauge(
      'classifier_ab_difference_ratio',
      'Candidate minus control accuracy, with the always-valid interval (signal: estimate, low, high).',
      ['arm', 'signal'],
      (g) => {
        for (const c of report().experiment?.comparisons ?? []) {
          if (c.difference === null) continue;
          g.set({ arm: c.candidate, signal: 'estimate' }, c.difference);
          g.set({ arm: c.candidate, signal: 'low' }, c.low!);
          g.set({ arm: c.candidate, signal: 'high' }, c.high!);
        }
      },
    );
    gauge(
      'classifier_ab_p_value',
      'Always-valid p-value of candidate vs control (signal: accuracy), and the sample-ratio-mismatch p-value (signal: srm).',
      ['arm', 'signal'],
      (g) => {
        const e = report().experiment;
        if (!e) return;
        for (const c of e.comparisons) g.set({ arm: c.candidate, signal: 'accuracy' }, c.pValue);
        g.set({ arm: e.control, signal: 'srm' }, e.sampleRatio.pValue);
      },
    );
    gauge('classifier_ab_labels_needed', 'Labels per arm still needed to settle the observed difference.', ['arm'], (g) => {
      for (const c of report().experiment?.comparisons ?? [])
        if (c.labelsNeededPerArm !== null) g.set({ arm: c.candidate }, c.labelsNeededPerArm);
    });
    gauge('classifier_ab_verdict', 'Verdict per candidate arm: 1 better, -1 worse, 0 not decided.', ['arm'], (g) => {
      for (const c of report().experiment?.comparisons ?? [])
        g.set({ arm: c.candidate }, c.verdict === 'candidate-better' ? 1 : c.verdict === 'candidate-worse' ? -1 : 0);
    });
    gauge(
      'classifier_shadow_agreement_ratio',
      'Share of mirrored images where the shadow model (model) agreed with the served top-1, over the window.',
      ['model', 'window'],
      (g) => {
        for (const w of windows())
          for (const s of report().shadow[w] ?? []) if (s.agreement !== null) g.set({ model: s.shadow, window: w }, s.agreement);
      },
    );
    gauge('classifier_arm_weight_ratio', 'Configured traffic share of each arm.', ['arm', 'model'], (g) => {
      for (const a of sources.weights()) g.set({ arm: a.arm, model: a.model }, a.weight);
    });
    // What PromQL needs for fleet-wide drift: the reference CDF at the confidence
    // histogram's bucket bounds, and the reference class mix, per model. The
    // bound is labelled `bound`, not `le` (only histograms may carry `le`);
    // rules join it to the buckets with label_replace(..., "le", "$1", "bound", "(.*)").
    gauge(
      'classifier_reference_confidence_cdf',
      'Reference (validation split) share of top-1 confidences at or below bound, at the bucket bounds (le) of classifier_confidence.',
      ['model', 'bound'],
      (g) => {
        for (const r of sources.references())
          for (const le of CONFIDENCE_BUCKETS) g.set({ model: r.model, bound: String(le) }, referenceCdf(r.quantiles, le));
      },
    );
    gauge('classifier_reference_class_share', 'Reference (validation split) share of each predicted class.', ['model', 'label'], (g) => {
      for (const r of sources.references()) r.labels.forEach((label, i) => g.set({ model: r.model, label }, r.classFrequencies[i]));
    });
    gauge(
      'classifier_model_load_failed',
      '1 for each model version the last load or reload refused; what served before keeps serving.',
      ['model', 'version'],
      (g) => {
        for (const f of sources.loadFailures()) g.set({ model: f.name, version: f.version }, 1);
      },
    );
    gauge(
      'classifier_model_info',
      'Loaded models (value 1), with runtime and parameter count.',
      ['model', 'version', 'runtime', 'parameters'],
      (g) => {
        for (const m of sources.models())
          g.set({ model: m.name, version: m.version, runtime: `${m.format} (${m.backend})`, parameters: String(m.parameters) }, 1);
      },
    );
  }
}
