import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { appendFile, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadManifest, ManifestError, validateManifest } from '../../src/models/manifest';
import { BASELINE } from '../helpers';

const shipped = () => JSON.parse(readFileSync(path.join(BASELINE, 'manifest.json'), 'utf8'));

describe('manifest validation', () => {
  it('accepts the shipped baseline manifest', () => {
    const m = validateManifest(shipped());
    assert.equal(m.name, 'baseline');
    assert.equal(m.labels.length, 10);
    assert.deepEqual(m.input.shape, [-1, 1, 28, 28]);
    assert.ok(m.output.temperature > 0);
    assert.ok(m.formats.onnx && m.formats.tfjs);
  });

  const broken: Array<[string, (m: any) => void, RegExp]> = [
    ['missing labels', (m) => delete m.labels, /labels/],
    ['duplicate labels', (m) => (m.labels[1] = m.labels[0]), /labels must be unique/],
    ['bad temperature', (m) => (m.output.temperature = -1), /output.temperature/],
    ['output size not matching labels', (m) => (m.output.shape = [-1, 9]), /output.shape/],
    ['three-channel input', (m) => (m.input.shape = [-1, 3, 28, 28]), /input.shape/],
    ['zero std', (m) => (m.input.normalization.std = 0), /normalization.std/],
    ['unknown output kind', (m) => (m.output.kind = 'scores'), /output.kind/],
    ['no formats', (m) => (m.formats = {}), /formats/],
    ['path escaping the artifact', (m) => (m.files['../../etc/passwd'] = 'a'.repeat(64)), /relative path/],
    ['bad digest', (m) => (m.files['model.onnx'] = 'xyz'), /sha256/],
    ['format without a checksum', (m) => delete m.files['model.onnx'], /no sha256/],
    ['unsorted reference bins', (m) => m.reference.confidence.binEdges.reverse(), /binEdges/],
    ['wrong schema version', (m) => (m.schemaVersion = 2), /schemaVersion/],
  ];
  for (const [what, mutate, message] of broken) {
    it(`refuses a manifest with ${what}`, () => {
      const m = shipped();
      mutate(m);
      assert.throws(
        () => validateManifest(m),
        (e: Error) => e instanceof ManifestError && message.test(e.message),
      );
    });
  }
});

describe('artifact checksums', () => {
  it('loads the shipped artifact after verifying every file', async () => {
    const m = await loadManifest(BASELINE);
    assert.equal(Object.keys(m.files).length >= 3, true);
  });

  it('refuses an artifact whose file changed, naming the file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pc-manifest-'));
    try {
      await cp(BASELINE, dir, { recursive: true });
      await appendFile(path.join(dir, 'tfjs', 'group1-shard1of1.bin'), Buffer.from([0]));
      await assert.rejects(loadManifest(dir), /tfjs\/group1-shard1of1.bin does not match its sha256/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses an artifact with a missing file or invalid JSON', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pc-manifest-'));
    try {
      await cp(BASELINE, dir, { recursive: true });
      await rm(path.join(dir, 'model.onnx'));
      await assert.rejects(loadManifest(dir), /model.onnx listed in manifest.json cannot be read/);
      await writeFile(path.join(dir, 'manifest.json'), '{not json');
      await assert.rejects(loadManifest(dir), /not valid JSON/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
