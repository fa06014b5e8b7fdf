/** The Dockerfile replayer that stands in for `docker build` in the container test. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { dockerignore, parseDockerfile, parsePairs, substitute } from '../support/dockerfile';

describe('Dockerfile replay', () => {
  it('joins continued lines, drops comments, keeps line numbers', () => {
    const ins = parseDockerfile('# c\nFROM node:24 AS build\n\nRUN a \\\n  # inner comment\n  && b\nCMD ["node", "x.js"]\n');
    assert.deepEqual(
      ins.map((i) => [i.op, i.args, i.line]),
      [
        ['FROM', 'node:24 AS build', 2],
        ['RUN', 'a && b', 4],
        ['CMD', '["node", "x.js"]', 7],
      ],
    );
  });

  it('substitutes variables and reads ENV pairs', () => {
    assert.equal(substitute('node:${V}-slim $W ${X:-d}', { V: '24', W: 'w' }), 'node:24-slim w d');
    assert.deepEqual(parsePairs('A=1 B="two words" C=3'), { A: '1', B: 'two words', C: '3' });
    assert.deepEqual(parsePairs('A one two'), { A: 'one two' });
  });

  it('applies .dockerignore like Docker: parents exclude children, ** spans folders, ! re-includes', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-dockerignore-'));
    writeFileSync(path.join(dir, '.dockerignore'), '# comment\nnode_modules\n**/*.pt\n*.md\n!README.md\n/dist\n');
    const ignored = dockerignore(dir);
    assert.equal(ignored('node_modules/x/index.js'), true);
    assert.equal(ignored('training/runs/a/final.pt'), true);
    assert.equal(ignored('top.pt'), true);
    assert.equal(ignored('NOTES.md'), true);
    assert.equal(ignored('README.md'), false);
    assert.equal(ignored('docs/guide.md'), false, '*.md matches the top level only');
    assert.equal(ignored('dist/src/main.js'), true);
    assert.equal(ignored('.npmrc'), false);
    assert.equal(ignored('src/main.ts'), false);
  });
});
