/**
 * A/B routing: which arm (model) answers a request.
 *
 * Assignment is a pure function of the routing key and the config, so every
 * replica agrees with no shared state: hash(seed, key) -> a bucket in [0,1),
 * and each arm owns a range of buckets (GrowthBook's scheme: FNV-1a 32-bit,
 * ranges laid out by weight, each shrunk by the coverage fraction). Changing
 * weights moves only the keys in the ranges that changed: 50/50 -> 60/40
 * moves 10% of keys. Keys whose bucket falls outside coverage are served by
 * the control arm's model but labelled arm "default", not the control arm's
 * name, and carry no experiment: their answers, metrics, accuracy and
 * feedback never mix with the experiment's own control population. Requests
 * without a key are assigned at random per request.
 */
import { EXPLICIT, type ModelSelector, OUTSIDE_EXPERIMENT, type Selection } from './selector';
import { MODEL_NAME, VERSION } from '../core/rules';

export interface ArmConfig {
  name: string;
  model: string;
  version?: string;
  weight: number;
}

export interface RoutingConfig {
  /** Experiment name; with `seed`, decides the hashing, so a new experiment reshuffles keys. */
  experiment: string;
  seed: string;
  /** Fraction of keys in the experiment (a ramp); the rest get the control arm. */
  coverage: number;
  /** Name of the control arm (the model in production today). */
  control: string;
  arms: ArmConfig[];
  /** Mirror a share of served traffic to another model, after the answer; never changes it. */
  shadow?: { model: string; version?: string; fraction: number };
}

export class RoutingConfigError extends Error {}

const RESERVED_ARMS = new Set([EXPLICIT, OUTSIDE_EXPERIMENT]);

/** FNV-1a, 32 bit, over the UTF-16 code units (as GrowthBook's SDKs hash). */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The key's bucket in [0, 1), 4 decimals, as GrowthBook's hash version 2. */
export function bucketOf(seed: string, key: string): number {
  return (fnv1a32(String(fnv1a32(seed + key))) % 10000) / 10000;
}

/** Validate an untrusted routing config (file, ConfigMap or admin request). */
export function parseRoutingConfig(raw: unknown, knownModels?: readonly string[]): RoutingConfig {
  const fail = (msg: string): never => {
    throw new RoutingConfigError(msg);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('routing config must be a JSON object');
  const o = raw as Record<string, unknown>;
  const experiment = o.experiment;
  if (typeof experiment !== 'string' || experiment.length === 0 || experiment.length > 128)
    fail('experiment must be a name of 1..128 characters');
  const seed = o.seed === undefined ? experiment : o.seed;
  if (typeof seed !== 'string' || seed.length > 128) fail('seed must be a string of at most 128 characters');
  const coverage = o.coverage === undefined ? 1 : o.coverage;
  if (typeof coverage !== 'number' || !(coverage >= 0 && coverage <= 1)) fail('coverage must be a number in [0, 1]');
  if (!Array.isArray(o.arms) || o.arms.length < 1 || o.arms.length > 16) fail('arms must be a list of 1..16 arms');
  const names = new Set<string>();
  const arms = (o.arms as unknown[]).map((a, i): ArmConfig => {
    if (typeof a !== 'object' || a === null) return fail(`arms[${i}] must be an object {name, model, weight}`);
    const arm = a as Record<string, unknown>;
    if (typeof arm.name !== 'string' || !MODEL_NAME.test(arm.name)) fail(`arms[${i}].name must match ${MODEL_NAME}`);
    if (RESERVED_ARMS.has(arm.name as string)) fail(`arms[${i}].name "${arm.name}" is reserved`);
    if (names.has(arm.name as string)) fail(`arm name "${arm.name}" is used twice`);
    names.add(arm.name as string);
    if (typeof arm.model !== 'string' || !MODEL_NAME.test(arm.model)) fail(`arms[${i}].model must be a model name`);
    if (knownModels && !knownModels.includes(arm.model as string))
      fail(`arms[${i}].model "${arm.model}" is not loaded; loaded: ${knownModels.join(', ')}`);
    if (arm.version !== undefined && (typeof arm.version !== 'string' || !VERSION.test(arm.version)))
      fail(`arms[${i}].version must be a positive integer string`);
    if (typeof arm.weight !== 'number' || !(arm.weight >= 0) || !Number.isFinite(arm.weight))
      fail(`arms[${i}].weight must be a number >= 0`);
    return {
      name: arm.name as string,
      model: arm.model as string,
      version: arm.version as string | undefined,
      weight: arm.weight as number,
    };
  });
  const total = arms.reduce((s, a) => s + a.weight, 0);
  if (!(total > 0)) fail('arm weights must add up to more than 0');
  const control = o.control === undefined ? arms[0].name : o.control;
  if (typeof control !== 'string' || !names.has(control)) fail(`control must name one of the arms (${[...names].join(', ')})`);
  let shadow: RoutingConfig['shadow'];
  if (o.shadow !== undefined) {
    const sh = o.shadow as Record<string, unknown>;
    if (typeof sh !== 'object' || sh === null) fail('shadow must be an object {model, fraction}');
    if (typeof sh.model !== 'string' || !MODEL_NAME.test(sh.model)) fail('shadow.model must be a model name');
    if (knownModels && !knownModels.includes(sh.model as string))
      fail(`shadow.model "${sh.model}" is not loaded; loaded: ${knownModels.join(', ')}`);
    if (sh.version !== undefined && (typeof sh.version !== 'string' || !VERSION.test(sh.version)))
      fail('shadow.version must be a positive integer string');
    if (typeof sh.fraction !== 'number' || !(sh.fraction >= 0 && sh.fraction <= 1)) fail('shadow.fraction must be a number in [0, 1]');
    shadow = Object.freeze({ model: sh.model as string, version: sh.version as string | undefined, fraction: sh.fraction as number });
  }
  return Object.freeze({
    ...(shadow ? { shadow } : {}),
    experiment: experiment as string,
    seed: seed as string,
    coverage: coverage as number,
    control: control as string,
    arms: arms.map((a) => Object.freeze({ ...a, weight: a.weight / total })),
  });
}

interface Range {
  arm: ArmConfig;
  start: number;
  end: number;
}

/** Bucket ranges per arm: [cumulative, cumulative + coverage * weight). */
export function bucketRanges(config: RoutingConfig): Range[] {
  let cumulative = 0;
  return config.arms.map((arm) => {
    const start = cumulative;
    cumulative += arm.weight;
    return { arm, start, end: start + config.coverage * arm.weight };
  });
}

export class AbRouter implements ModelSelector {
  private readonly ranges: Range[];
  private readonly controlArm: ArmConfig;

  constructor(
    readonly config: RoutingConfig,
    private readonly random: () => number = Math.random,
  ) {
    this.ranges = bucketRanges(config);
    this.controlArm = config.arms.find((a) => a.name === config.control)!;
  }

  /** The arm for a bucket in [0,1), or undefined outside coverage. */
  armAt(bucket: number): ArmConfig | undefined {
    return this.ranges.find((r) => bucket >= r.start && bucket < r.end)?.arm;
  }

  select(req: { model?: string; version?: string; routingKey?: string }): Selection {
    if (req.model !== undefined) return { model: req.model, version: req.version, arm: EXPLICIT };
    const bucket = req.routingKey !== undefined ? bucketOf(this.config.seed, req.routingKey) : Math.floor(this.random() * 10000) / 10000;
    const arm = this.armAt(bucket);
    const chosen = arm ?? this.controlArm;
    if (arm === undefined) return { model: chosen.model, version: chosen.version, arm: OUTSIDE_EXPERIMENT };
    return { model: chosen.model, version: chosen.version, arm: chosen.name, experiment: this.config.experiment };
  }
}
