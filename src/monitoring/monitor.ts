/**
 * What the service learns from its own traffic: per model, drift of the
 * live predictions against the manifest's reference and the accuracy
 * estimated from calibrated confidence; per model and arm, the accuracy
 * observed from feedback; per experiment arm, the counts the A/B report is
 * built from. Windows are per-minute rings (bounded memory); the A/B counts
 * run from the start of the current experiment on this replica.
 */
import type { AbstainReason } from '../core/types';
import type { Manifest } from '../models/manifest';
import { abReport, type AbOptions, type AbReport, type ArmCounts, DEFAULT_AB_OPTIONS } from './ab-report';
import { DEFAULT_THRESHOLDS, DriftMonitor, type DriftReport, type DriftThresholds } from './drift';
import { MinuteWindows } from './windows';

export const WINDOWS = { '1h': 60, '24h': 1440 } as const;
export type WindowName = keyof typeof WINDOWS;

export interface PredictionEvent {
  model: string;
  version: string;
  arm: string;
  /** The experiment the request counted in, if any. */
  experiment?: string;
  /** The top-1 class and its confidence (also of an abstained prediction). */
  labelIndex: number;
  confidence: number;
  /** Set when the service answered without a label: counted apart, never in drift's estimate or as an answer. */
  abstained?: AbstainReason;
}

export interface FeedbackEvent {
  model: string;
  version: string;
  arm: string;
  experiment?: string;
  confidence: number;
  correct: boolean;
  /** Feedback on an abstained prediction: counted apart from accuracy. */
  abstained?: boolean;
}

export interface AccuracyFigures {
  labelled: number;
  correct: number;
  /** Observed accuracy from feedback (null without labels). */
  observed: number | null;
  /** Mean confidence of the labelled predictions: what calibration promised for them. */
  expected: number | null;
}

export interface ExperimentArms {
  experiment: string;
  control: string;
  arms: { name: string; model: string; weight: number }[];
}

export interface MonitorOptions {
  drift: DriftThresholds;
  ab: AbOptions;
  now: () => number;
}

const key = (...parts: string[]) => parts.join('\u0000');

export class Monitor {
  private readonly drift = new Map<string, DriftMonitor>();
  private readonly feedback = new Map<string, { model: string; arm: string; windows: MinuteWindows }>();
  private experiment?: string;
  private assigned = new Map<string, number>();
  private abstainedInExperiment = new Map<string, number>();
  private readonly abstentions = new Map<string, { model: string; arm: string; reason: AbstainReason; windows: MinuteWindows }>();
  private readonly abstainedFeedback = new Map<string, { model: string; arm: string; windows: MinuteWindows }>();
  private labels = new Map<string, { labelled: number; correct: number }>();
  private readonly shadows = new Map<string, { served: string; shadow: string; windows: MinuteWindows }>();
  private readonly opts: MonitorOptions;

  constructor(opts: Partial<MonitorOptions> = {}) {
    this.opts = { drift: DEFAULT_THRESHOLDS, ab: DEFAULT_AB_OPTIONS, now: Date.now, ...opts };
  }

  /** Start watching a model (idempotent): its manifest holds the drift reference. */
  watchModel(manifest: Manifest): void {
    if (this.drift.has(manifest.name)) return;
    const ref = manifest.reference;
    this.drift.set(
      manifest.name,
      new DriftMonitor(
        {
          binEdges: ref.confidence.binEdges,
          counts: ref.confidence.counts,
          quantiles: ref.confidence.quantiles,
          classCounts: ref.predictedClass.counts,
        },
        this.opts.drift,
        this.opts.now,
      ),
    );
  }

  private switchExperiment(name: string): void {
    if (this.experiment === name) return;
    this.experiment = name;
    this.assigned = new Map();
    this.abstainedInExperiment = new Map();
    this.labels = new Map();
  }

  prediction(e: PredictionEvent): void {
    // Drift compares every input with the reference (abstained ones too); its accuracy estimate counts answers only.
    this.drift.get(e.model)?.record(e.confidence, e.labelIndex, e.abstained === undefined);
    if (e.abstained)
      this.windowsOf(this.abstentions, key(e.model, e.arm, e.abstained), { model: e.model, arm: e.arm, reason: e.abstained }, 1).add(0, 1);
    if (e.experiment !== undefined) {
      this.switchExperiment(e.experiment);
      this.assigned.set(e.arm, (this.assigned.get(e.arm) ?? 0) + 1);
      if (e.abstained) this.abstainedInExperiment.set(e.arm, (this.abstainedInExperiment.get(e.arm) ?? 0) + 1);
    }
  }

  /** The minute windows under `k` in `map`, made with `fields` on first use. */
  private windowsOf<T extends object>(
    map: Map<string, T & { windows: MinuteWindows }>,
    k: string,
    fields: T,
    series: number,
  ): MinuteWindows {
    let entry = map.get(k);
    if (!entry) {
      entry = { ...fields, windows: new MinuteWindows(series, 1440, this.opts.now) };
      map.set(k, entry);
    }
    return entry.windows;
  }

  feedbackReceived(e: FeedbackEvent): void {
    if (e.abstained) {
      this.windowsOf(this.abstainedFeedback, key(e.model, e.arm), { model: e.model, arm: e.arm }, 2).addAll([1, e.correct ? 1 : 0]);
      return;
    }
    const k = key(e.model, e.arm);
    let f = this.feedback.get(k);
    if (!f) {
      f = { model: e.model, arm: e.arm, windows: new MinuteWindows(3, 1440, this.opts.now) };
      this.feedback.set(k, f);
    }
    f.windows.addAll([1, e.correct ? 1 : 0, e.confidence]);
    if (e.experiment !== undefined && e.experiment === this.experiment) {
      const l = this.labels.get(e.arm) ?? { labelled: 0, correct: 0 };
      l.labelled++;
      if (e.correct) l.correct++;
      this.labels.set(e.arm, l);
    }
  }

  shadowCompared(served: string, shadow: string, compared: number, agreed: number): void {
    const k = key(served, shadow);
    let s = this.shadows.get(k);
    if (!s) {
      s = { served, shadow, windows: new MinuteWindows(2, 1440, this.opts.now) };
      this.shadows.set(k, s);
    }
    s.windows.addAll([compared, agreed]);
  }

  /** How often the shadow model's top-1 agreed with the served model's, per window. */
  shadowAgreement(window: WindowName): { served: string; shadow: string; compared: number; agreement: number | null }[] {
    return [...this.shadows.values()].map(({ served, shadow, windows }) => {
      const [compared, agreed] = windows.sum(WINDOWS[window]);
      return { served, shadow, compared, agreement: compared > 0 ? agreed / compared : null };
    });
  }

  driftReports(window: WindowName): { model: string; report: DriftReport }[] {
    return [...this.drift].map(([model, d]) => ({ model, report: d.report(WINDOWS[window]) }));
  }

  accuracy(window: WindowName): { model: string; arm: string; figures: AccuracyFigures }[] {
    return [...this.feedback.values()].map(({ model, arm, windows }) => {
      const [labelled, correct, confSum] = windows.sum(WINDOWS[window]);
      return {
        model,
        arm,
        figures: {
          labelled,
          correct,
          observed: labelled > 0 ? correct / labelled : null,
          expected: labelled > 0 ? confSum / labelled : null,
        },
      };
    });
  }

  /**
   * Predictions answered without a label, per model, arm and reason, and
   * the feedback that came back for them (how often the top-1 guess would
   * have been right): apart from accuracy and drift.
   */
  abstentionReport(window: WindowName): {
    abstained: { model: string; arm: string; reason: AbstainReason; count: number }[];
    feedback: { model: string; arm: string; labelled: number; correct: number }[];
  } {
    const minutes = WINDOWS[window];
    // Only what happened in the window: an entry whose minutes have all passed is left out.
    return {
      abstained: [...this.abstentions.values()]
        .map(({ model, arm, reason, windows }) => ({ model, arm, reason, count: windows.sum(minutes)[0] }))
        .filter((a) => a.count > 0),
      feedback: [...this.abstainedFeedback.values()]
        .map(({ model, arm, windows }) => {
          const [labelled, correct] = windows.sum(minutes);
          return { model, arm, labelled, correct };
        })
        .filter((f) => f.labelled > 0),
    };
  }

  /** The A/B report of the experiment in force, from this replica's traffic. */
  ab(config: ExperimentArms | undefined): AbReport | null {
    if (!config) return null;
    this.switchExperiment(config.experiment);
    const arms: ArmCounts[] = config.arms.map((a) => ({
      name: a.name,
      model: a.model,
      weight: a.weight,
      assigned: this.assigned.get(a.name) ?? 0,
      abstained: this.abstainedInExperiment.get(a.name) ?? 0,
      labelled: this.labels.get(a.name)?.labelled ?? 0,
      correct: this.labels.get(a.name)?.correct ?? 0,
    }));
    return abReport(config.experiment, config.control, arms, this.opts.ab);
  }

  /**
   * The evidence for the rollout decision and the on-call view: the A/B
   * report of the experiment in force, observed and estimated accuracy,
   * drift and shadow agreement, per window, from this replica's traffic.
   */
  report(experiment: ExperimentArms | undefined) {
    const windows = Object.keys(WINDOWS) as WindowName[];
    const perWindow = <T>(f: (w: WindowName) => T) => Object.fromEntries(windows.map((w) => [w, f(w)])) as Record<WindowName, T>;
    return {
      experiment: this.ab(experiment),
      accuracy: perWindow((w) => this.accuracy(w)),
      drift: perWindow((w) => this.driftReports(w)),
      shadow: perWindow((w) => this.shadowAgreement(w)),
      abstentions: perWindow((w) => this.abstentionReport(w)),
    };
  }
}
