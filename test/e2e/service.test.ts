/**
 * End to end, as a user runs it: `npm start` on the built service, every
 * fixture PNG over HTTP, each top-1 compared with the training code's own
 * PyTorch prediction for that image (parity/reference.json), through both
 * runtimes; the same set through the gRPC ClassifyStream, in order; then
 * SIGTERM drains and exits 0.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { clients } from '../grpc-clients';
import { argmax, fixtureBytes, fixtureImages, MODELS, pytorchReference, ROOT } from '../helpers';
import { freePort } from '../support/processes';
import { pollUntil } from '../support/wait';

/**
 * The service's own process under `npm start` (npm may start it through a
 * shell). A container runtime or Kubernetes signals the service process
 * itself; npm does not forward SIGTERM to its child, so the test signals the
 * service directly, as they would.
 */
function servicePid(npmPid: number): number {
  const children = (pid: number): number[] => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  const queue = [npmPid];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (cmd[0].endsWith('node') && cmd.includes('dist/src/main.js')) return pid;
    queue.push(...children(pid));
  }
  throw new Error(`no service process under npm (pid ${npmPid})`);
}

async function startNpm(
  env: Record<string, string>,
): Promise<{ child: ChildProcess; base: string; grpcPort: number; output: () => string; exited: Promise<number | null> }> {
  const port = await freePort();
  const grpcPort = await freePort();
  let out = '';
  const child = spawn('npm', ['start', '--silent'], {
    cwd: ROOT,
    env: { ...process.env, HTTP_PORT: String(port), GRPC_PORT: String(grpcPort), METRICS_PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const base = `http://127.0.0.1:${port}`;
  // Another process, started at warn level: nothing to wait on but its readiness probe.
  await pollUntil('npm start answers /readyz', async () => (await fetch(`${base}/readyz`)).status === 200, {
    timeoutMs: 30_000,
    stop: () => (child.exitCode !== null ? `service exited during start: ${out}` : undefined),
  });
  return { child, base, grpcPort, output: () => out, exited };
}

async function classifyPng(base: string, bytes: Buffer, name: string) {
  const form = new FormData();
  form.append('image', new Blob([bytes], { type: 'image/png' }), name);
  const res = await fetch(`${base}/v1/classify`, { method: 'POST', body: form });
  assert.equal(res.status, 200);
  return (await res.json()) as { labelIndex: number; confidence: number; model: string; version: string };
}

for (const runtime of ['onnx', 'tfjs'] as const) {
  describe(`npm start with RUNTIME=${runtime}`, () => {
    it('classifies every fixture PNG as the offline evaluation does, then drains on SIGTERM', async () => {
      const svc = await startNpm({ RUNTIME: runtime, LOG_LEVEL: 'warn' });
      try {
        // Each answer is checked against the PyTorch reference of the model
        // that gave it (models/routing.json may split traffic between models).
        const refs = new Map<string, Map<number, number[]>>();
        const ref = (model: string, version: string) => {
          const key = `${model}/${version}`;
          if (!refs.has(key)) refs.set(key, pytorchReference(path.join(MODELS, model, version)));
          return refs.get(key)!;
        };
        const fixtures = fixtureImages();
        const disagree: string[] = [];
        let correct = 0;
        for (const f of fixtures) {
          const r = await classifyPng(svc.base, fixtureBytes(f.file), f.file);
          const expected = argmax(ref(r.model, r.version).get(f.testIndex)!);
          if (r.labelIndex !== expected) disagree.push(`${f.file}: service (${r.model}/${r.version}) ${r.labelIndex}, PyTorch ${expected}`);
          if (r.labelIndex === f.labelIndex) correct++;
        }
        // Every fixture has PyTorch's probabilities in parity/reference.json, and the parity check
        // finds 0 top-1 mismatches on those 1,024 test images (README): the service must agree on all.
        assert.deepEqual(disagree, [], `${disagree.length} of ${fixtures.length} fixtures disagree with PyTorch`);
        // A sanity floor on the real labels (the shipped model is ~93-94% on the test set).
        assert.ok(correct / fixtures.length > 0.85, `fixture accuracy ${correct}/${fixtures.length}`);

        // The whole fixture set through the gRPC stream, answers in order.
        const c = clients(svc.grpcPort);
        try {
          const stream = c.product.ClassifyStream();
          const results: { index: number; tag: string; classification: { label_index: number; model: string; version: string } }[] = [];
          stream.on('data', (r: (typeof results)[number]) => results.push(r));
          const ended = new Promise<void>((resolve, reject) => {
            stream.on('end', resolve);
            stream.on('error', reject);
          });
          for (const f of fixtures) stream.write({ image: { encoded: fixtureBytes(f.file) }, tag: f.file });
          stream.end();
          await ended;
          assert.equal(results.length, fixtures.length);
          results.forEach((r, i) => {
            assert.equal(Number(r.index), i);
            assert.equal(r.tag, fixtures[i].file);
            assert.equal(
              r.classification.label_index,
              argmax(ref(r.classification.model, r.classification.version).get(fixtures[i].testIndex)!),
              r.tag,
            );
          });
        } finally {
          c.close();
        }
      } finally {
        process.kill(servicePid(svc.child.pid!), 'SIGTERM');
      }
      assert.equal(await svc.exited, 0, svc.output());
    });
  });
}
