/**
 * CPU profile of DataPlane.classify at one caller, for finding per-request
 * overhead on the hot path:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/profile-inprocess.js [model] [seconds]
 */
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/core/logger';
import { createService } from '../src/service';
import { readTestSet } from '../src/tools/fashion-mnist';

async function main(): Promise<void> {
  const model = process.argv[2] ?? 'baseline';
  const seconds = Number(process.argv[3] ?? 5);
  const routing = path.join(os.tmpdir(), `pc-profile-routing-${model}.json`);
  writeFileSync(routing, JSON.stringify({ experiment: 'profile', control: model, arms: [{ name: model, model, weight: 1 }] }));
  const root = path.resolve(__dirname, '..', '..');
  const service = await createService(
    loadConfig({
      MODEL_DIR: path.join(root, 'models'),
      ROUTING_FILE: routing,
      HTTP_PORT: '0',
      GRPC_PORT: '0',
      METRICS_PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
    }),
    createLogger('silent'),
  );
  await service.start();
  const { images } = readTestSet();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const k = n % 1000;
    await service.dataplane.classify(
      { kind: 'pixels', pixels: images.pixels.subarray(k * 784, (k + 1) * 784) },
      { routingKey: `customer-${n % 1000}` },
    );
    n++;
  }
  process.stdout.write(`${model}: ${((1e6 * (performance.now() - t0)) / 1000 / n).toFixed(0)} us per classify at 1 caller (${n} calls)\n`);
  await service.stop();
}

void main();
