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

export interface ModelSelector {
  select(req: { model?: string; version?: string; routingKey?: string }): Selection;
}

/** Every request without an explicit model goes to one configured model. */
export class SingleModelSelector implements ModelSelector {
  constructor(private readonly model: string) {}

  select(req: { model?: string; version?: string }): Selection {
    if (req.model !== undefined) return { model: req.model, version: req.version, arm: 'explicit' };
    return { model: this.model, version: req.version, arm: 'default' };
  }
}
