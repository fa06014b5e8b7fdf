/**
 * Which model answers a request. A request may name a model (and version):
 * that bypasses any experiment and is reported as arm "explicit". Otherwise
 * the selector decides; the A/B router implements this same interface.
 */
export interface Selection {
  model: string;
  version?: string;
  arm: string;
  /** The experiment whose analysis this request counts in; unset for explicit choices and keys outside coverage. */
  experiment?: string;
}

/** The arm of requests outside any experiment (outside its coverage, or with none configured). */
export const OUTSIDE_EXPERIMENT = 'default';
/** The arm of requests that name their model. */
export const EXPLICIT = 'explicit';

export interface ModelSelector {
  select(req: { model?: string; version?: string; routingKey?: string }): Selection;
}

/** Every request without an explicit model goes to one configured model. */
export class SingleModelSelector implements ModelSelector {
  constructor(private readonly model: string) {}

  select(req: { model?: string; version?: string }): Selection {
    if (req.model !== undefined) return { model: req.model, version: req.version, arm: EXPLICIT };
    return { model: this.model, version: req.version, arm: OUTSIDE_EXPERIMENT };
  }
}
