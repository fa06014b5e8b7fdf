/** Shared by the test suites: paths, a silent logger, in-process services. */
import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { cp, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { type Config, loadConfig } from '../src/config';
import { VERSION } from '../src/core/rules';
import { type MetricsSources, ServiceMetrics } from '../src/monitoring/metrics';
import { createService, type Service, type ServiceOptions } from '../src/service';
import { type ContractWatch, watchContract } from './support/openapi-contract';

export const ROOT = path.resolve(__dirname, '..', '..');
export const MODELS = path.join(ROOT, 'models');
/** A shipped model's versions, oldest first: all are loaded, and a request without a version gets the last. */
export function shippedVersions(name: string): string[] {
  return readdirSync(path.join(MODELS, name), { withFileTypes: true })
    .filter((d) => d.isDirectory() && VERSION.test(d.name))
    .map((d) => d.name)
    .sort((a, b) => Number(a) - Number(b));
}
/** The version that serves a request without one. */
export const latestVersion = (name: string): string => shippedVersions(name).at(-1)!;
export const BASELINE_VERSION = latestVersion('baseline');
/** The baseline artifact that serves requests without a version. */
export const BASELINE = path.join(MODELS, 'baseline', BASELINE_VERSION);
export const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'fashion-mnist');

export const silentLog = pino({ level: 'silent' });

/** Metrics over no traffic and no models: the families and their labels, for tests of the metrics themselves. */
export const NO_SOURCES: MetricsSources = {
  report: () => ({ experiment: null, accuracy: {}, drift: {}, shadow: {} }),
  models: () => [],
  loadFailures: () => [],
  weights: () => [],
  references: () => [],
};

export function bareMetrics(defaultMetrics = false): ServiceMetrics {
  return new ServiceMetrics(NO_SOURCES, { defaultMetrics });
}

export interface FixtureImage {
  file: string;
  testIndex: number;
  labelIndex: number;
  label: string;
}

export function fixtureImages(): FixtureImage[] {
  return JSON.parse(readFileSync(path.join(FIXTURES, 'labels.json'), 'utf8')).images;
}

export function fixtureBytes(file: string): Buffer {
  return readFileSync(path.join(FIXTURES, file));
}

/** The PyTorch probabilities recorded for an artifact's parity images, by test-set index. */
export function pytorchReference(artifactDir: string): Map<number, number[]> {
  const ref = JSON.parse(readFileSync(path.join(artifactDir, 'parity', 'reference.json'), 'utf8'));
  return new Map(ref.indices.map((idx: number, i: number) => [idx, ref.probabilities[i]]));
}

export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/** A copy of the shipped model directory that a test may change. */
export async function tempModelDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pc-models-'));
  await cp(MODELS, dir, { recursive: true });
  return dir;
}

export function testConfig(env: Record<string, string> = {}): Config {
  // No A/B config unless a test gives one: answers come from DEFAULT_MODEL.
  return loadConfig({
    MODEL_DIR: MODELS,
    HTTP_PORT: '0',
    GRPC_PORT: '0',
    METRICS_PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    ROUTING_FILE: path.join(os.tmpdir(), 'pc-no-routing.json'),
    ...env,
  });
}

export type TestService = Service & { port: number; grpcPort: number; metricsPort: number; contract: ContractWatch };

/**
 * A service on free ports, whose every HTTP answer is checked against
 * api/openapi.json (test/support/openapi-contract.ts). Its stop() stops the
 * service as before, then throws an AssertionError listing each answer that
 * the document does not describe, so the suite's after() fails.
 * OPENAPI_CONTRACT_LOG=<file> appends each service's count of checked answers there.
 */
export async function startService(env: Record<string, string> = {}, opts: ServiceOptions = {}): Promise<TestService> {
  const service = await createService(testConfig(env), silentLog, opts);
  const contract = watchContract(service.httpServer);
  const stop = service.stop.bind(service);
  const checkedStop: Service['stop'] = async () => {
    const outcome = await stop();
    contract.detach();
    if (process.env.OPENAPI_CONTRACT_LOG) {
      appendFileSync(
        process.env.OPENAPI_CONTRACT_LOG,
        `${JSON.stringify({ checked: contract.checked, violations: contract.violations.length })}\n`,
      );
    }
    contract.assertClean();
    return outcome;
  };
  const { httpPort, grpcPort, metricsPort } = await service.start();
  return Object.assign(service, { port: httpPort, grpcPort, metricsPort, contract, stop: checkedStop });
}

/** How many HTTP answers of a service started by startService() the OpenAPI contract has checked so far. */
export function checkedResponses(service: TestService): number {
  return service.contract.checked;
}
