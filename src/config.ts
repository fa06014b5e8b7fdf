/**
 * Service configuration from the environment, validated once at start and
 * frozen. A bad value stops the process with a message naming the variable.
 */
import path from 'node:path';

export interface Config {
  readonly host: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly metricsPort: number;
  readonly modelDir: string;
  /** Inference engine: onnx (default) or tfjs. */
  readonly runtime: 'onnx' | 'tfjs';
  readonly ortThreads: number;
  /** Model that serves requests naming none (until A/B routing is configured). */
  readonly defaultModel: string;
  readonly maxImageBytes: number;
  readonly maxImagePixels: number;
  readonly maxBatchImages: number;
  readonly maxJsonBytes: number;
  readonly drainTimeoutMs: number;
  /** Micro-batching per model: images per runtime call, queue wait, queue bound, calls at once. */
  readonly batchMaxImages: number;
  readonly batchMaxDelayMs: number;
  readonly queueMaxImages: number;
  readonly batchConcurrency: number;
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
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function int(env: Env, key: string, def: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new ConfigError(`${key}=${raw} must be an integer in [${min}, ${max}]`);
  return v;
}

function oneOf<T extends string>(env: Env, key: string, def: T, allowed: readonly T[]): T {
  const raw = env[key];
  if (raw === undefined || raw === '') return def;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`${key}=${raw} must be one of ${allowed.join(', ')}`);
  return raw as T;
}

export function loadConfig(env: Env = process.env): Config {
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
    defaultModel: env.DEFAULT_MODEL || 'baseline',
    maxImageBytes: int(env, 'MAX_IMAGE_BYTES', 10 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    maxImagePixels: int(env, 'MAX_IMAGE_PIXELS', 40_000_000, 784, 1_000_000_000),
    maxBatchImages: int(env, 'MAX_BATCH_IMAGES', 256, 1, 100_000),
    maxJsonBytes: int(env, 'MAX_JSON_BYTES', 32 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    drainTimeoutMs: int(env, 'DRAIN_TIMEOUT_MS', 10_000, 0, 600_000),
    batchMaxImages: int(env, 'BATCH_MAX_IMAGES', 64, 1, 4096),
    batchMaxDelayMs: int(env, 'BATCH_MAX_DELAY_MS', 0, 0, 1000),
    queueMaxImages: int(env, 'QUEUE_MAX_IMAGES', 1024, 1, 1_000_000),
    batchConcurrency: int(env, 'BATCH_CONCURRENCY', 1, 1, 64),
    adminToken,
    receiptSecret,
    feedbackMaxAgeHours: int(env, 'FEEDBACK_MAX_AGE_HOURS', 168, 1, 24 * 366),
    feedbackDedupCapacity: int(env, 'FEEDBACK_DEDUP_CAPACITY', 200_000, 1, 10_000_000),
    grpcMaxMessageBytes: int(env, 'GRPC_MAX_MESSAGE_BYTES', 32 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    grpcStreamWindow: int(env, 'GRPC_STREAM_WINDOW', 32, 1, 4096),
    routingFile: path.resolve(env.ROUTING_FILE || path.join(modelDir, 'routing.json')),
    routingPollMs: int(env, 'ROUTING_POLL_MS', 2000, 50, 600_000),
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
  };
  return Object.freeze(config);
}
