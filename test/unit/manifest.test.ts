import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { appendFile, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadManifest, ManifestError, validateManifest } from '../../src/models/manifest';
import { BASELINE, MODELS } from '../helpers';

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
    ['an int8 block that is not an object', (m) => (m.formats.onnx.int8 = 'model.int8.onnx'), /formats.onnx.int8 must be an object/],
    ['an int8 copy without a path', (m) => delete m.formats.onnx.int8.path, /formats.onnx.int8.path must be a non-empty string/],
    [
      'an int8 path escaping the artifact',
      (m) => (m.formats.onnx.int8.path = '../x.onnx'),
      /formats.onnx.int8.path must be a relative path/,
    ],
    ['an int8 path that is the float model', (m) => (m.formats.onnx.int8.path = 'model.onnx'), /formats.onnx.int8.path must differ/],
    [
      'an int8 copy without a checksum',
      (m) => delete m.files['model.int8.onnx'],
      /formats.onnx.int8.path model.int8.onnx has no sha256 in files/,
    ],
    [
      'an int8 copy made from another float model',
      (m) => (m.formats.onnx.int8.quantizedFrom.sha256 = 'a'.repeat(64)),
      /formats.onnx.int8.quantizedFrom must name model.onnx/,
    ],
    [
      'a malformed quantizedFrom digest',
      (m) => (m.formats.onnx.int8.quantizedFrom.sha256 = 'xyz'),
      /formats.onnx.int8.quantizedFrom.sha256/,
    ],
    ['an int8 agreement above 1', (m) => (m.formats.onnx.int8.evaluation.agreement = 1.5), /formats.onnx.int8.evaluation.agreement/],
    [
      'an int8 evaluation without its accuracy',
      (m) => delete m.formats.onnx.int8.evaluation.accuracy,
      /formats.onnx.int8.evaluation.accuracy/,
    ],
    [
      'an int8 copy of the TF.js format',
      (m) => (m.formats.tfjs.int8 = { path: 'model.int8.onnx' }),
      /formats.tfjs.int8: only the ONNX format has an int8 copy/,
    ],
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

describe('the int8 block (formats.onnx.int8)', () => {
  for (const name of ['baseline', 'dendritic']) {
    it(`is read from the shipped ${name} manifest, its file listed in files`, () => {
      const raw = JSON.parse(readFileSync(path.join(MODELS, name, '1', 'manifest.json'), 'utf8'));
      const m = validateManifest(raw);
      const int8 = m.formats.onnx?.int8;
      assert.ok(int8);
      assert.equal(int8.path, 'model.int8.onnx');
      assert.match(m.files[int8.path], /^[0-9a-f]{64}$/);
      assert.deepEqual(int8.quantizedFrom, { path: 'model.onnx', sha256: m.files['model.onnx'] });
      assert.equal(int8.evaluation?.samples, 10000);
      assert.equal((int8.calibration as { split: string }).split, 'validation');
    });
  }

  it('is optional: a manifest without it is served in float32 only', () => {
    const m = shipped();
    delete m.formats.onnx.int8;
    delete m.files['model.int8.onnx'];
    assert.equal(validateManifest(m).formats.onnx?.int8, undefined);
  });
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

  it('verifies the int8 copy too: a changed or missing model.int8.onnx refuses the version', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pc-manifest-'));
    try {
      await cp(BASELINE, dir, { recursive: true });
      await appendFile(path.join(dir, 'model.int8.onnx'), Buffer.from([0]));
      await assert.rejects(loadManifest(dir), /model.int8.onnx does not match its sha256/);
      await rm(path.join(dir, 'model.int8.onnx'));
      await assert.rejects(loadManifest(dir), /model.int8.onnx listed in manifest.json cannot be read/);
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
