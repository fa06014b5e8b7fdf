/**
 * When the service declines to answer with a label. The server's policy
 * (ABSTAIN) applies unless a request says otherwise: `abstain: true` asks
 * for the full policy (out-of-distribution, then low confidence), `false`
 * for a label whatever the input.
 */
import type { AbstainReason, OodVerdict } from './types';

export const ABSTAIN_POLICIES = ['off', 'ood', 'ood+confidence'] as const;
export type AbstainPolicy = (typeof ABSTAIN_POLICIES)[number];

export interface AbstainSettings {
  /** ABSTAIN: the policy for requests that do not choose. */
  policy: AbstainPolicy;
  /** ABSTAIN_MIN_CONFIDENCE: below it an answer is low-confidence. */
  minConfidence: number;
}

/** The policy for one request: its own choice, else the server's. */
export function policyFor(requested: boolean | undefined, settings: AbstainSettings): AbstainPolicy {
  if (requested === undefined) return settings.policy;
  return requested ? 'ood+confidence' : 'off';
}

/** Whether an answer is low-confidence: logged for labelling always, abstained under `ood+confidence`. */
export function isLowConfidence(confidence: number, settings: AbstainSettings): boolean {
  return confidence < settings.minConfidence;
}

/** Why to abstain on this prediction under `policy`, if at all. */
export function abstainReason(
  policy: AbstainPolicy,
  ood: OodVerdict | undefined,
  confidence: number,
  settings: AbstainSettings,
): AbstainReason | undefined {
  if (policy === 'off') return undefined;
  if (ood?.flagged) return 'out-of-distribution';
  if (policy === 'ood+confidence' && isLowConfidence(confidence, settings)) return 'low-confidence';
  return undefined;
}
