/**
 * Composition root and process concerns: config, logger, service, signals.
 * SIGTERM/SIGINT drain and exit 0; SIGHUP reloads models.
 */
import { ConfigError, loadConfig } from './config';
import { createLogger } from './core/logger';
import { createService } from './service';

async function main(): Promise<void> {
  let config;
  const deprecations: string[] = [];
  try {
    config = loadConfig(process.env, (message) => deprecations.push(message));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  for (const message of deprecations) log.warn({}, message);
  const started = Date.now();
  const service = await createService(config, log);
  // The signal handlers go in before start: /readyz can answer before start
  // has finished (HTTP listens first), and a SIGTERM in that window must
  // drain, not kill the process.
  const starting = service.start();

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, 'draining');
    await starting.catch(() => undefined); // a failed start exits on its own, below
    const outcome = await service.stop();
    // drained: every request admitted before the signal was answered in time.
    log.info(outcome, 'stopped');
    log.flush();
    // Give the async log destination a moment to write its last lines.
    setTimeout(() => process.exit(0), 50).unref();
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    service.reload().catch((err) => log.error({ err: (err as Error).message }, 'reload failed'));
  });

  const { httpPort, grpcPort, metricsPort } = await starting;
  log.info(
    { httpPort, grpcPort, metricsPort, models: service.repository.names(), runtime: config.runtime, startupMs: Date.now() - started },
    'ready',
  );
}

main().catch((err) => {
  process.stderr.write(`product-classifier failed to start: ${(err as Error).message}\n`);
  process.exit(1);
});
