/**
 * `npm ci` installs without warnings: no installed package declares an
 * engines range that the Node.js running the project falls outside
 * (EBADENGINE), the project's own range admits it, and there is no project
 * config npm does not know (npm 11 warns about each on every install).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import semver from 'semver';
import { ROOT } from '../helpers';

const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { engines?: { node?: string } | string[]; dev?: boolean }>;
};
const own = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };

describe('install', () => {
  it('runs on the Node.js it declares, and every locked package accepts that Node.js', () => {
    assert.ok(semver.satisfies(process.version, own.engines.node), `${process.version} is outside "engines": ${own.engines.node}`);
    const refusing = Object.entries(lock.packages)
      .filter(([name, p]) => name !== '' && p.engines && !Array.isArray(p.engines) && p.engines.node)
      .filter(([, p]) => !semver.satisfies(process.version, (p.engines as { node: string }).node))
      .map(([name, p]) => `${name} wants node ${(p.engines as { node: string }).node}`);
    assert.deepEqual(refusing, [], `npm ci would print EBADENGINE on ${process.version}`);
  });

  it('has no project npm config with keys npm does not know', () => {
    const npmrc = path.join(ROOT, '.npmrc');
    if (!existsSync(npmrc)) return;
    const keys = readFileSync(npmrc, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#') && !l.startsWith(';'))
      .map((l) => l.split('=')[0].trim());
    // Package-specific switches (such as onnxruntime-node-install) belong in the environment or package.json's allowScripts.
    assert.deepEqual(
      keys.filter((k) => k.includes('onnxruntime')),
      [],
    );
  });
});
