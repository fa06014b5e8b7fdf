/** Structured JSON logs (pino). Never log payloads or secrets. */
import pino from 'pino';

export type AppLogger = pino.Logger;

/**
 * How the service writes its log lines to stdout: asynchronously (a request
 * never waits for a write), and gathered into writes of about 4 KiB (one
 * line per request would otherwise cost a write each, a few percent of the
 * event loop's time under load), flushed at least every 100 ms so that a
 * line is seen promptly when traffic is light. Nothing is lost at exit:
 * pino flushes the buffer synchronously on the process's exit event
 * (process.exit, an uncaught exception, the end of the event loop), and the
 * shutdown in main.ts flushes after its last line. Only a kill that gives
 * the process no exit event (SIGKILL) loses the last 100 ms.
 */
export const LOG_BUFFER = { minLength: 4096, periodicFlushMs: 100 } as const;

export function createLogger(level: string, destination?: pino.DestinationStream): AppLogger {
  return pino(
    {
      level,
      base: { service: 'product-classifier' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['req.headers.authorization', 'authorization', 'token'], censor: '[redacted]' },
    },
    destination ?? pino.destination({ sync: false, minLength: LOG_BUFFER.minLength, periodicFlush: LOG_BUFFER.periodicFlushMs }),
  );
}
