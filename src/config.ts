/**
 * Service configuration from the environment, validated once at start and
 * frozen. A bad value stops the process with a message naming the variable.
 */
import path from 'node:path';
import { ABSTAIN_POLICIES, type AbstainSettings } from './core/abstain';
import { MODEL_NAME } from './core/rules';
import { INFERENCE_THREADS, type InferenceThread, type Precision, PRECISIONS } from './core/runtime-settings';

export interface Config {
  readonly host: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly metricsPort: number;
  readonly modelDir: string;
  /** Inference engine: onnx (default) or tfjs. */
  readonly runtime: 'onnx' | 'tfjs';
  readonly ortThreads: number;
  /** Where ONNX sessions compute (INFERENCE_THREAD): a thread per model (worker, default) or the event loop's thread (caller). */
  readonly inferenceThread: InferenceThread;
  /** The ONNX precision each model is served in (MODEL_PRECISION). */
  readonly modelPrecision: ModelPrecision;
  /** Model that serves requests naming none (until A/B routing is configured). */
  readonly defaultModel: string;
  readonly maxImageBytes: number;
  readonly maxImagePixels: number;
  /** Images in one classify or batch request (CLASSIFY_MAX_IMAGES). */
  readonly classifyMaxImages: number;
  readonly maxJsonBytes: number;
  readonly drainTimeoutMs: number;
  /** Micro-batching per model: images per runtime call, queue wait, queue bound, calls at once. */
  readonly batcherMaxSize: number;
  readonly batcherMaxDelayMs: number;
  readonly batcherMaxQueue: number;
  readonly batcherConcurrency: number;
  readonly adminToken?: string;
  /**
   * HMAC secret for prediction-id receipts. Replicas that share it accept
   * each other's ids; unset, each process makes a random one (feedback then
   * only works on the replica that answered).
   */
  readonly receiptSecret?: string;
  readonly feedbackMaxAgeHours: number;
  readonly feedbackDedupCapacity: number;
  readonly grpcMaxMessageBytes: number;
  /** Requests a ClassifyStream works on ahead of the client's reading. */
  readonly grpcStreamWindow: number;
  /** A/B config file, re-read when it changes (default MODEL_DIR/routing.json). */
  readonly routingFile: string;
  readonly routingPollMs: number;
  readonly logLevel: string;
  /** The try-it page at `/` (TRY_IT_PAGE=on|off); /docs and /openapi.json are always served. */
  readonly tryItPage: boolean;
  /** Browser origins allowed to call the API (CORS_ORIGINS); empty: CORS off. */
  readonly corsOrigins: readonly string[];
  /** When to answer without a label (ABSTAIN, ABSTAIN_MIN_CONFIDENCE). */
  readonly abstain: AbstainSettings;
  /** Payload logging for labelling (PAYLOAD_LOG_*); off unless a URL or a file is set. */
  readonly payloadLog: {
    readonly url?: string;
    readonly file?: string;
    readonly rate: number;
    readonly queue: number;
    readonly fileMaxBytes: number;
  };
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

/**
 * Variables renamed into one scheme (CLASSIFY_* for a request, BATCHER_* for
 * the micro-batcher). The old name still works for one release, with a
 * warning; when both are set the new one wins.
 */
export const RENAMED: Readonly<Record<string, string>> = {
  CLASSIFY_MAX_IMAGES: 'MAX_BATCH_IMAGES',
  BATCHER_MAX_SIZE: 'BATCH_MAX_IMAGES',
  BATCHER_MAX_DELAY_MS: 'BATCH_MAX_DELAY_MS',
  BATCHER_MAX_QUEUE: 'QUEUE_MAX_IMAGES',
  BATCHER_CONCURRENCY: 'BATCH_CONCURRENCY',
};

/** A variable's value and the name it was set under: the new name, else its old one. */
function lookup(env: Env, key: string): { name: string; raw: string | undefined } {
  const old = RENAMED[key];
  if ((env[key] === undefined || env[key] === '') && old !== undefined && env[old] !== undefined && env[old] !== '') {
    return { name: old, raw: env[old] };
  }
  return { name: key, raw: env[key] };
}

/** A warning for each old name in use. */
export function deprecations(env: Env): string[] {
  return Object.entries(RENAMED)
    .filter(([, old]) => env[old] !== undefined && env[old] !== '')
    .map(([name, old]) => `${old} is deprecated and will be removed in the next release; set ${name} instead`);
}

function int(env: Env, key: string, def: number, min: number, max: number): number {
  const { name, raw } = lookup(env, key);
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new ConfigError(`${name}=${raw} must be an integer in [${min}, ${max}]`);
  return v;
}

function fraction(env: Env, key: string, def: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!/^\s*[0-9.eE+-]+\s*$/.test(raw) || !(v >= 0 && v <= 1)) throw new ConfigError(`${key}=${raw} must be a number in [0, 1]`);
  return v;
}

function oneOf<T extends string>(env: Env, key: string, def: T, allowed: readonly T[]): T {
  const raw = env[key];
  if (raw === undefined || raw === '') return def;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`${key}=${raw} must be one of ${allowed.join(', ')}`);
  return raw as T;
}

/**
 * CORS_ORIGINS: a comma-separated list of origins (`https://shop.example.com`,
 * scheme, host and port, no path) or `*` for any origin.
 */
function origins(env: Env): readonly string[] {
  const raw = env.CORS_ORIGINS?.trim();
  if (!raw) return Object.freeze([]);
  const list = raw
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  for (const o of list) {
    if (o === '*') continue;
    let url: URL | undefined;
    try {
      url = new URL(o);
    } catch {
      /* reported below */
    }
    if (!url || !/^https?:$/.test(url.protocol) || url.origin !== o) {
      throw new ConfigError(
        `CORS_ORIGINS entry "${o}" must be * or an origin like https://shop.example.com (scheme, host, optional port, no path or trailing slash)`,
      );
    }
  }
  if (list.includes('*') && list.length > 1) throw new ConfigError('CORS_ORIGINS=* allows every origin; list origins or give * alone');
  return Object.freeze(list);
}

/** MODEL_PRECISION: the precision for every model, then per-model exceptions. */
export interface ModelPrecision {
  readonly default: Precision;
  readonly byModel: Readonly<Record<string, Precision>>;
}

/** The precision a model is served in under a MODEL_PRECISION setting. */
export function precisionFor(setting: ModelPrecision, model: string): Precision {
  return Object.hasOwn(setting.byModel, model) ? setting.byModel[model] : setting.default;
}

/**
 * MODEL_PRECISION: `float32` (default) or `int8` for every model, or a
 * comma-separated list of `name=precision` with an optional bare default,
 * e.g. `int8,dendritic=float32`.
 */
function modelPrecision(env: Env): ModelPrecision {
  const raw = env.MODEL_PRECISION?.trim();
  let def: Precision = 'float32';
  const byModel: Record<string, Precision> = {};
  if (raw) {
    let sawDefault = false;
    for (const item of raw.split(',').map((x) => x.trim())) {
      const [name, value] = item.includes('=') ? item.split('=', 2).map((x) => x.trim()) : [undefined, item];
      if (!(PRECISIONS as readonly string[]).includes(value)) {
        throw new ConfigError(`MODEL_PRECISION entry "${item}" must be ${PRECISIONS.join(' or ')}, or name=${PRECISIONS.join('|')}`);
      }
      if (name === undefined) {
        if (sawDefault) throw new ConfigError(`MODEL_PRECISION=${raw} gives the default precision twice`);
        sawDefault = true;
        def = value as Precision;
      } else {
        if (!MODEL_NAME.test(name)) throw new ConfigError(`MODEL_PRECISION entry "${item}": "${name}" is not a model name`);
        if (Object.hasOwn(byModel, name)) throw new ConfigError(`MODEL_PRECISION names ${name} twice`);
        byModel[name] = value as Precision;
      }
    }
  }
  return Object.freeze({ default: def, byModel: Object.freeze(byModel) });
}

/** PAYLOAD_LOG_URL: an http(s) URL that receives CloudEvents. */
function payloadUrl(env: Env): string | undefined {
  const raw = env.PAYLOAD_LOG_URL;
  if (!raw) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    /* reported below */
  }
  if (!url || !/^https?:$/.test(url.protocol)) throw new ConfigError(`PAYLOAD_LOG_URL=${raw} must be an http:// or https:// URL`);
  return raw;
}

/** The validated, frozen config; `warn` hears of each deprecated variable in use. */
export function loadConfig(env: Env = process.env, warn: (message: string) => void = () => {}): Config {
  deprecations(env).forEach(warn);
  const adminToken = env.ADMIN_TOKEN || undefined;
  if (adminToken !== undefined && adminToken.length < 16) throw new ConfigError('ADMIN_TOKEN must be at least 16 characters');
  const receiptSecret = env.RECEIPT_SECRET || undefined;
  if (receiptSecret !== undefined && receiptSecret.length < 16) throw new ConfigError('RECEIPT_SECRET must be at least 16 characters');
  const modelDir = path.resolve(env.MODEL_DIR || './models');
  const config: Config = {
    host: env.HOST || '0.0.0.0',
    httpPort: int(env, 'HTTP_PORT', 8080, 0, 65535),
    grpcPort: int(env, 'GRPC_PORT', 50051, 0, 65535),
    metricsPort: int(env, 'METRICS_PORT', 9464, 0, 65535),
    modelDir,
    runtime: oneOf(env, 'RUNTIME', 'onnx', ['onnx', 'tfjs'] as const),
    ortThreads: int(env, 'ORT_THREADS', 1, 1, 64),
    inferenceThread: oneOf(env, 'INFERENCE_THREAD', 'worker', INFERENCE_THREADS),
    modelPrecision: modelPrecision(env),
    defaultModel: env.DEFAULT_MODEL || 'baseline',
    maxImageBytes: int(env, 'MAX_IMAGE_BYTES', 10 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    maxImagePixels: int(env, 'MAX_IMAGE_PIXELS', 40_000_000, 784, 1_000_000_000),
    classifyMaxImages: int(env, 'CLASSIFY_MAX_IMAGES', 256, 1, 100_000),
    maxJsonBytes: int(env, 'MAX_JSON_BYTES', 32 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    drainTimeoutMs: int(env, 'DRAIN_TIMEOUT_MS', 10_000, 0, 600_000),
    batcherMaxSize: int(env, 'BATCHER_MAX_SIZE', 64, 1, 4096),
    batcherMaxDelayMs: int(env, 'BATCHER_MAX_DELAY_MS', 0, 0, 1000),
    batcherMaxQueue: int(env, 'BATCHER_MAX_QUEUE', 1024, 1, 1_000_000),
    batcherConcurrency: int(env, 'BATCHER_CONCURRENCY', 1, 1, 64),
    adminToken,
    receiptSecret,
    feedbackMaxAgeHours: int(env, 'FEEDBACK_MAX_AGE_HOURS', 168, 1, 24 * 366),
    feedbackDedupCapacity: int(env, 'FEEDBACK_DEDUP_CAPACITY', 200_000, 1, 10_000_000),
    grpcMaxMessageBytes: int(env, 'GRPC_MAX_MESSAGE_BYTES', 32 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    grpcStreamWindow: int(env, 'GRPC_STREAM_WINDOW', 32, 1, 4096),
    routingFile: path.resolve(env.ROUTING_FILE || path.join(modelDir, 'routing.json')),
    routingPollMs: int(env, 'ROUTING_POLL_MS', 2000, 50, 600_000),
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
    tryItPage: oneOf(env, 'TRY_IT_PAGE', 'on', ['on', 'off'] as const) === 'on',
    corsOrigins: origins(env),
    abstain: Object.freeze({
      policy: oneOf(env, 'ABSTAIN', 'off', ABSTAIN_POLICIES),
      minConfidence: fraction(env, 'ABSTAIN_MIN_CONFIDENCE', 0.5),
    }),
    payloadLog: Object.freeze({
      url: payloadUrl(env),
      file: env.PAYLOAD_LOG_FILE ? path.resolve(env.PAYLOAD_LOG_FILE) : undefined,
      rate: fraction(env, 'PAYLOAD_LOG_RATE', 0.01),
      queue: int(env, 'PAYLOAD_LOG_QUEUE', 1000, 1, 1_000_000),
      fileMaxBytes: int(env, 'PAYLOAD_LOG_FILE_MAX_BYTES', 100 * 1024 * 1024, 4096, 1024 * 1024 * 1024 * 1024),
    }),
  };
  return Object.freeze(config);
}
