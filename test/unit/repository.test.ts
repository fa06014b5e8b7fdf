import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { cp, rm, writeFile, appendFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Manifest } from '../../src/models/manifest';
import { ModelRepository } from '../../src/models/repository';
import type { InferenceRuntime, RuntimeFactory } from '../../src/models/runtime';
import { OnnxRuntimeFactory } from '../../src/models/onnx-runtime';
import { silentLog, tempModelDir } from '../helpers';
import { nextEvent } from '../support/wait';

/** Records which runtimes were disposed, and tells when one is, so retirement after in-flight work can be awaited. */
class RecordingFactory implements RuntimeFactory {
  readonly format = 'onnx' as const;
  readonly backend = 'recording';
  readonly disposed: string[] = [];
  readonly events = new EventEmitter();
  async load(_dir: string, manifest: Manifest): Promise<InferenceRuntime> {
    const id = `${manifest.name}/${manifest.version}`;
    const { disposed, events } = this;
    return {
      format: 'onnx',
      backend: 'recording',
      async run(_input: Float32Array, batch: number) {
        return new Float32Array(batch * 10);
      },
      async dispose() {
        disposed.push(id);
        events.emit('disposed', id);
      },
    };
  }
}

describe('model repository', () => {
  let dir: string;
  before(async () => {
    dir = await tempModelDir();
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('loads real artifacts and serves the highest version by default', async () => {
    await cp(path.join(dir, 'baseline', '1'), path.join(dir, 'baseline', '7'), { recursive: true });
    const manifestPath = path.join(dir, 'baseline', '7', 'manifest.json');
    const { readFile } = await import('node:fs/promises');
    const m = JSON.parse(await readFile(manifestPath, 'utf8'));
    m.version = '7';
    await writeFile(manifestPath, JSON.stringify(m));
    const repo = new ModelRepository({ dir, factory: new OnnxRuntimeFactory({ intraOpThreads: 1 }), log: silentLog });
    const report = await repo.reload();
    assert.ok(report.loaded.includes('baseline/1') && report.loaded.includes('baseline/7'));
    const lease = repo.acquire('baseline');
    assert.equal(lease.model.version, '7');
    lease.release();
    const v1 = repo.acquire('baseline', '1');
    assert.equal(v1.model.version, '1');
    v1.release();
    assert.throws(
      () => repo.acquire('nope'),
      (e: any) => e.code === 'NOT_FOUND' && /unknown model "nope"/.test(e.message),
    );
    assert.throws(
      () => repo.acquire('baseline', '3'),
      (e: any) => e.code === 'NOT_FOUND',
    );
    await repo.close();
    await rm(path.join(dir, 'baseline', '7'), { recursive: true });
  });

  it('refuses a version whose directory and manifest disagree', async () => {
    await cp(path.join(dir, 'baseline', '1'), path.join(dir, 'baseline', '2'), { recursive: true });
    const repo = new ModelRepository({ dir, factory: new RecordingFactory(), log: silentLog });
    const report = await repo.reload();
    assert.equal(report.failed.length, 1);
    assert.match(report.failed[0].error, /manifest says baseline\/1 but lives in baseline\/2/);
    await rm(path.join(dir, 'baseline', '2'), { recursive: true });
    await repo.close();
  });

  it('swaps a changed version in and retires the old copy only after in-flight requests finish', async () => {
    const factory = new RecordingFactory();
    const repo = new ModelRepository({ dir, factory, log: silentLog });
    await repo.reload();
    const inFlight = repo.acquire('baseline');
    const before = inFlight.model;
    // Change the manifest (a re-packaged artifact): the fingerprint changes, so it reloads.
    const manifestPath = path.join(dir, 'baseline', '1', 'manifest.json');
    await appendFile(manifestPath, '\n');
    const report = await repo.reload();
    assert.deepEqual(report.loaded, ['baseline/1']);
    assert.notEqual(repo.acquire('baseline').model, before);
    assert.deepEqual(factory.disposed, [], 'old copy still has a request in flight');
    const retired = nextEvent(factory.events, 'disposed', undefined, 'the old copy disposed');
    inFlight.release();
    assert.equal(await retired, 'baseline/1', 'the old copy retires once its last request is done');
    assert.deepEqual(factory.disposed, ['baseline/1'], 'and only it');
    await repo.close();
  });

  it('keeps serving the old copy when a reload finds a corrupt file, and reports why', async () => {
    const factory = new RecordingFactory();
    const repo = new ModelRepository({ dir, factory, log: silentLog });
    await repo.reload();
    const before = repo.acquire('baseline');
    before.release();
    await appendFile(path.join(dir, 'baseline', '1', 'manifest.json'), ' ');
    await appendFile(path.join(dir, 'baseline', '1', 'model.onnx'), Buffer.from([1, 2, 3]));
    const report = await repo.reload();
    assert.equal(report.failed.length, 1);
    assert.match(report.failed[0].error, /model.onnx does not match its sha256/);
    const after = repo.acquire('baseline');
    assert.equal(after.model, before.model);
    after.release();
    assert.equal(repo.status().failures.length, 1);
    assert.deepEqual(
      repo
        .status()
        .models.filter((m) => m.name === 'baseline')
        .map((m) => m.version),
      ['1'],
    );
    await repo.close();
  });
});
