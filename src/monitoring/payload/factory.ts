/**
 * The payload logger the configuration asks for, or none: nothing is
 * logged unless a URL or a file is given. Each option is one setting:
 *
 *   url           PAYLOAD_LOG_URL             CloudEvents receiver (http or https)
 *   file          PAYLOAD_LOG_FILE            JSON-lines file
 *   rate          PAYLOAD_LOG_RATE            share of ordinary predictions, 0..1
 *   queue         PAYLOAD_LOG_QUEUE           records each sink's queue holds
 *   fileMaxBytes  PAYLOAD_LOG_FILE_MAX_BYTES  size at which the file is rotated
 *
 * The others have defaults and no setting of their own (yet).
 */
import type { AppLogger } from '../../core/logger';
import type { PayloadCounter } from './counts';
import { FileJsonlSink } from './file-sink';
import { HttpCloudEventSink } from './http-sink';
import { PayloadLogger } from './payload-log';
import type { PayloadSink, Timers } from './sink';

export interface PayloadLogOptions {
  url?: string;
  file?: string;
  rate?: number;
  queue?: number;
  fileMaxBytes?: number;
  /** Rotated files kept (default 3). */
  fileKeep?: number;
  /** Bound of one post (default 2000 ms). */
  timeoutMs?: number;
  /** Posts in flight (default 4). */
  concurrency?: number;
  /** `ce-source` (default `/product-classifier`); the pod's name is a good one. */
  source?: string;
  /** `ce-inferenceservicename` (default `product-classifier`). */
  inferenceService?: string;
  /** `ce-namespace` (left out by default). */
  namespace?: string;
  closeTimeoutMs?: number;
  counter?: PayloadCounter;
  logger?: AppLogger;
  random?: () => number;
  timers?: Timers;
}

/** A PayloadLogger over the configured sinks, or undefined when neither a URL nor a file is set. */
export function createPayloadLogger(opts: PayloadLogOptions): PayloadLogger | undefined {
  const sinks: PayloadSink[] = [];
  if (opts.url) {
    const { timeoutMs, concurrency, source, inferenceService, namespace, timers } = opts;
    sinks.push(new HttpCloudEventSink(opts.url, { timeoutMs, concurrency, source, inferenceService, namespace, timers }));
  }
  if (opts.file) sinks.push(new FileJsonlSink(opts.file, { maxBytes: opts.fileMaxBytes, keep: opts.fileKeep }));
  if (sinks.length === 0) return undefined;
  const { rate, queue, random, closeTimeoutMs, counter, logger, timers } = opts;
  return new PayloadLogger({ sinks, rate, queue, random, closeTimeoutMs, counter, logger, timers });
}
