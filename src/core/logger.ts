/** Structured JSON logs (pino). Never log payloads or secrets. */
import pino from 'pino';

export type AppLogger = pino.Logger;

export function createLogger(level: string, destination?: pino.DestinationStream): AppLogger {
  return pino(
    {
      level,
      base: { service: 'product-classifier' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['req.headers.authorization', 'authorization', 'token'], censor: '[redacted]' },
    },
    destination ?? pino.destination({ sync: false }),
  );
}
