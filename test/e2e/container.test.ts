/**
 * The container image, built and started without a Docker engine: the
 * Dockerfile's steps are replayed into stage directories (clean copy of the
 * context through .dockerignore, production install, build), then the
 * runtime stage is started with its CMD, as its USER when this test runs as
 * root, checked with its own HEALTHCHECK, asked to classify, and stopped with
 * its STOPSIGNAL. A broken step, a file the image forgot, a dev dependency
 * needed at run time or a CMD that does not drain fails here.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { call, clients } from '../grpc-clients';
import { fixtureBytes, fixtureImages, ROOT } from '../helpers';
import { replayDockerfile, type Stage } from '../support/dockerfile';
import { freePort } from '../support/processes';
import { pollUntil } from '../support/wait';

/** This machine's environment minus what npm exports to scripts, which a Docker build would not have. */
function hostEnv(): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
}

describe('container image (Dockerfile replayed without Docker)', { timeout: 15 * 60_000 }, () => {
  let workRoot: string;
  let stages: Stage[];
  let image: Stage;
  let app: string;

  before(() => {
    workRoot = mkdtempSync(path.join(os.tmpdir(), 'pc-image-'));
    // The runtime user must be able to traverse to /app, as in an image.
    chmodSync(workRoot, 0o755);
    stages = replayDockerfile({ contextDir: ROOT, workRoot, baseEnv: hostEnv() });
    image = stages.at(-1)!;
    app = path.join(image.root, image.workdir);
  });
  after(() => {
    if (workRoot) rmSync(workRoot, { recursive: true, force: true });
  });

  it('builds in stages and ships only the runtime', () => {
    assert.deepEqual(
      stages.map((s) => s.name),
      ['build', 'deps', 'runtime'],
    );
    for (const f of [
      'dist/src/main.js',
      'dist/web/index.html',
      'dist/web/app.js',
      'dist/web/docs.html',
      'api/openapi.json',
      'node_modules/swagger-ui-dist/swagger-ui-bundle.js',
      'node_modules/@tensorflow/tfjs/dist/tf.min.js',
      'package.json',
      'proto/classifier/v1/classifier.proto',
      'proto/inference/v2/grpc_predict_v2.proto',
      'models/routing.json',
      'models/baseline/1/manifest.json',
      'models/dendritic/1/model.onnx',
      'node_modules/onnxruntime-node/package.json',
      'node_modules/sharp/package.json',
    ]) {
      assert.ok(existsSync(path.join(app, f)), `the image has ${f}`);
    }
    for (const f of [
      'node_modules/typescript',
      'node_modules/supertest',
      'src',
      'test',
      'training',
      'dist/test',
      'web',
      'node_modules/esbuild',
      'node_modules/playwright-core',
      '.git',
    ]) {
      assert.ok(!existsSync(path.join(app, f)), `the image leaves out ${f}`);
    }
    assert.match(image.user ?? '', /^[1-9][0-9]*(:[0-9]+)?$/, 'a numeric non-root USER');
    assert.deepEqual(image.exposed.sort(), ['50051', '8080', '9464']);
    assert.deepEqual(image.cmd, ['node', 'dist/src/main.js'], 'node is PID 1 so SIGTERM reaches the service');
    assert.equal(image.stopSignal, 'SIGTERM');
    assert.ok(image.healthcheck, 'a HEALTHCHECK');
  });

  it('starts as its user, passes its health check, classifies over HTTP and gRPC, and drains on SIGTERM', async () => {
    const [httpPort, grpcPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    // Ports as `docker run -e` would set them; everything else from the image's ENV.
    const env = {
      PATH: process.env.PATH,
      ...image.env,
      HTTP_PORT: String(httpPort),
      GRPC_PORT: String(grpcPort),
      METRICS_PORT: String(metricsPort),
      HOST: '127.0.0.1',
    };
    const [uid, gid] = (image.user ?? '').split(':').map(Number);
    const asUser = process.getuid?.() === 0 ? { uid, gid: gid || uid } : {};
    let out = '';
    const child = spawn(image.cmd![0], image.cmd!.slice(1), { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'], ...asUser });
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // The image's own HEALTHCHECK is the probe a container runtime would run, so it is asked until it passes.
      await pollUntil(
        'the HEALTHCHECK passes',
        () => spawnSync(image.healthcheck![0], image.healthcheck!.slice(1), { cwd: app, env, timeout: 3000, ...asUser }).status === 0,
        { timeoutMs: 30_000, intervalMs: 200, stop: () => (child.exitCode !== null ? `the image's CMD exited: ${out}` : undefined) },
      ).catch((err: Error) => {
        throw new Error(`${err.message}: ${out}`);
      });

      const [f] = fixtureImages();
      const form = new FormData();
      form.append('image', new Blob([fixtureBytes(f.file)], { type: 'image/png' }), f.file);
      const res = await fetch(`http://127.0.0.1:${httpPort}/v1/classify`, { method: 'POST', body: form });
      assert.equal(res.status, 200, await res.clone().text());
      const body = (await res.json()) as { label: string };
      assert.equal(body.label, f.label);

      const c = clients(grpcPort);
      try {
        const health = await call(c.health, 'Check', { service: '' });
        assert.equal(health.status, 'SERVING');
      } finally {
        c.close();
      }
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(metrics, /classifier_requests_total\{transport="http"/);

      child.kill(image.stopSignal as NodeJS.Signals);
      assert.equal(await exited, 0, out);
      assert.match(out, /"msg":"stopped"/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
