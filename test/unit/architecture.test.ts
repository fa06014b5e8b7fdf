/**
 * The import direction docs/architecture.md draws, checked on the source:
 * transports -> pipeline -> core -> models, routing, monitoring, feedback,
 * preprocess -> the shared foundation (errors, rules, the abstain rule, runtime settings, types, logger,
 * config). A module may import its own layer or the ones below it, never
 * one above.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers';

const SRC = path.join(ROOT, 'src');

/** Layer of a module (path relative to src/, no extension); higher may import lower. */
export const LAYERS: Array<{ name: string; rank: number; match: (m: string) => boolean }> = [
  {
    name: 'foundation',
    rank: 0,
    match: (m) => ['core/errors', 'core/rules', 'core/abstain', 'core/runtime-settings', 'core/types', 'core/logger', 'config'].includes(m),
  },
  { name: 'services', rank: 1, match: (m) => /^(models|routing|monitoring|feedback|preprocess)\//.test(m) },
  { name: 'core', rank: 2, match: (m) => m.startsWith('core/') },
  { name: 'pipeline', rank: 3, match: (m) => m.startsWith('pipeline/') },
  { name: 'transports', rank: 4, match: (m) => m.startsWith('transport/') },
  { name: 'composition and tools', rank: 5, match: (m) => ['service', 'main'].includes(m) || m.startsWith('tools/') },
];

function layerOf(module: string) {
  const layer = LAYERS.find((l) => l.match(module));
  assert.ok(layer, `${module} belongs to no layer of docs/architecture.md`);
  return layer;
}

function modules(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? modules(path.join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [path.relative(SRC, path.join(dir, e.name)).slice(0, -3)]
        : [],
  );
}

function importsOf(module: string): string[] {
  const text = readFileSync(path.join(SRC, `${module}.ts`), 'utf8');
  return [...text.matchAll(/^(?:import|export)[^'"]*from '(\.[^']+)'/gm)].map((m) => path.posix.join(path.posix.dirname(module), m[1]));
}

/** Every import from a module to a higher layer, as "a (layer) imports b (layer)". */
function upwardImports(all: string[], imports: (m: string) => string[]): string[] {
  const upward: string[] = [];
  for (const m of all) {
    const from = layerOf(m);
    for (const target of imports(m)) {
      const to = layerOf(target);
      if (to.rank > from.rank) upward.push(`${m} (${from.name}) imports ${target} (${to.name})`);
    }
  }
  return upward;
}

describe('architecture', () => {
  it('every module belongs to a layer, and no import points up', () => {
    const all = modules();
    assert.ok(all.length > 40, 'the source tree was found');
    assert.ok(importsOf('transport/http/app').includes('pipeline/pipeline'), 'imports are read');
    assert.deepEqual(upwardImports(all, importsOf), []);
  });

  it('reports an import that points up', () => {
    const imports: Record<string, string[]> = {
      'core/classifier': ['transport/http/app', 'models/repository'],
      'models/repository': ['core/errors', 'pipeline/pipeline'],
      'transport/http/app': ['core/dataplane'],
    };
    assert.deepEqual(
      upwardImports(Object.keys(imports), (m) => imports[m]),
      [
        'core/classifier (core) imports transport/http/app (transports)',
        'models/repository (services) imports pipeline/pipeline (pipeline)',
      ],
    );
  });
});
