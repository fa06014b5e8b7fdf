/** A/B assignment: hashing, splits, stickiness, ramps, config validation and hot reload. */
import assert from 'node:assert/strict';
import { mkdtemp, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { AbRouter, bucketOf, fnv1a32, parseRoutingConfig, RoutingConfigError } from '../../src/routing/router';
import { RoutingSource } from '../../src/routing/routing-source';
import { type LogLine, LogCapture } from '../support/wait';

const MODELS = ['baseline', 'dendritic'];
const config = (weights: number[], extra: Record<string, unknown> = {}) =>
  parseRoutingConfig(
    {
      experiment: 'dendritic-rollout',
      arms: weights.map((w, i) => ({ name: ['control', 'candidate', 'third'][i], model: MODELS[i % 2], weight: w })),
      ...extra,
    },
    MODELS,
  );

function split(router: AbRouter, n: number, key = (i: number) => `user-${i}`): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const s = router.select({ routingKey: key(i) });
    const arm = s.experiment !== undefined ? s.arm : 'out';
    counts.set(arm, (counts.get(arm) ?? 0) + 1);
  }
  return counts;
}

describe('hashing', () => {
  it('is FNV-1a 32-bit, as GrowthBook hashes (vectors from growthbook packages/sdk-js/test/cases/fnv.json)', () => {
    const vectors: [string, number][] = [
      ['a', 220],
      ['b', 77],
      ['ab', 946],
      ['def', 652],
      ['8952klfjas09ujkasdf', 549],
      ['123', 11],
      ['___)((*":&', 563],
    ];
    for (const [text, mod1000] of vectors) assert.equal(fnv1a32(text) % 1000, mod1000, text);
    assert.equal(fnv1a32(''), 0x811c9dc5);
  });

  it('puts keys in [0,1) buckets that depend on the seed', () => {
    const b = bucketOf('exp-1', 'user-1');
    assert.ok(b >= 0 && b < 1);
    assert.equal(bucketOf('exp-1', 'user-1'), b);
    const moved = Array.from({ length: 1000 }, (_, i) => bucketOf('exp-1', `u${i}`) !== bucketOf('exp-2', `u${i}`)).filter(Boolean).length;
    assert.ok(moved > 950, 'a new seed reshuffles keys');
  });
});

describe('AbRouter', () => {
  it('splits 100k keys within 1% of the weights', () => {
    for (const weights of [
      [0.5, 0.5],
      [0.7, 0.2, 0.1],
    ]) {
      const counts = split(new AbRouter(config(weights)), 100_000);
      weights.forEach((w, i) => {
        const share = (counts.get(['control', 'candidate', 'third'][i]) ?? 0) / 100_000;
        assert.ok(Math.abs(share - w) < 0.01, `arm ${i}: ${share} vs ${w}`);
      });
    }
  });

  it('is sticky: the same key gets the same arm, on any replica', () => {
    const a = new AbRouter(config([1, 1]));
    const b = new AbRouter(config([1, 1]));
    for (let i = 0; i < 1000; i++) {
      const key = `customer-${i * 7919}`;
      const first = a.select({ routingKey: key }).arm;
      assert.equal(a.select({ routingKey: key }).arm, first);
      assert.equal(b.select({ routingKey: key }).arm, first);
    }
  });

  it('moves about 10% of keys when 50/50 becomes 60/40, all towards the grown arm', () => {
    const before = new AbRouter(config([50, 50]));
    const after = new AbRouter(config([60, 40]));
    let moved = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const x = before.select({ routingKey: `k${i}` }).arm;
      const y = after.select({ routingKey: `k${i}` }).arm;
      if (x !== y) {
        moved++;
        assert.deepEqual([x, y], ['candidate', 'control']);
      }
    }
    assert.ok(Math.abs(moved / n - 0.1) < 0.01, `moved ${moved / n}`);
  });

  it('serves keys outside coverage by the control model under arm "default", out of the analysis', () => {
    const router = new AbRouter(config([0.5, 0.5], { coverage: 0.2, control: 'control' }));
    const counts = split(router, 50_000);
    assert.ok(Math.abs((counts.get('out') ?? 0) / 50_000 - 0.8) < 0.01);
    assert.ok(Math.abs((counts.get('candidate') ?? 0) / 50_000 - 0.1) < 0.01);
    const outside = Array.from({ length: 2000 }, (_, i) => router.select({ routingKey: `z${i}` })).find((s) => s.experiment === undefined)!;
    assert.equal(outside.arm, 'default', "never the control arm's own name");
    assert.equal(outside.model, 'baseline');
    // Growing the ramp keeps everyone already in the experiment on their arm.
    const wider = new AbRouter(config([0.5, 0.5], { coverage: 0.5 }));
    for (let i = 0; i < 5000; i++) {
      const s = router.select({ routingKey: `r${i}` });
      if (s.experiment !== undefined) assert.equal(wider.select({ routingKey: `r${i}` }).arm, s.arm);
    }
  });

  it('assigns at random without a key, and leaves explicit choices out', () => {
    let seed = 1;
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const router = new AbRouter(config([0.25, 0.75]), rand);
    let candidate = 0;
    for (let i = 0; i < 20_000; i++) if (router.select({}).arm === 'candidate') candidate++;
    assert.ok(Math.abs(candidate / 20_000 - 0.75) < 0.015);
    assert.deepEqual(router.select({ model: 'dendritic', version: '1', routingKey: 'k' }), {
      model: 'dendritic',
      version: '1',
      arm: 'explicit',
    });
  });
});

describe('parseRoutingConfig', () => {
  it('normalizes weights and defaults seed, coverage and control', () => {
    const c = config([3, 1]);
    assert.deepEqual(
      c.arms.map((a) => a.weight),
      [0.75, 0.25],
    );
    assert.equal(c.seed, 'dendritic-rollout');
    assert.equal(c.coverage, 1);
    assert.equal(c.control, 'control');
  });

  it('refuses bad configs with the reason', () => {
    const bad: [unknown, RegExp][] = [
      [null, /JSON object/],
      [{ arms: [] }, /experiment/],
      [{ experiment: 'e', arms: [] }, /1\.\.16 arms/],
      [{ experiment: 'e', arms: [{ name: 'a', model: 'baseline', weight: -1 }] }, /weight/],
      [{ experiment: 'e', arms: [{ name: 'a', model: 'baseline', weight: 0 }] }, /more than 0/],
      [{ experiment: 'e', arms: [{ name: 'a', model: 'nope', weight: 1 }] }, /"nope" is not loaded/],
      [
        {
          experiment: 'e',
          arms: [
            { name: 'a', model: 'baseline', weight: 1 },
            { name: 'a', model: 'dendritic', weight: 1 },
          ],
        },
        /used twice/,
      ],
      [{ experiment: 'e', arms: [{ name: 'explicit', model: 'baseline', weight: 1 }] }, /reserved/],
      [{ experiment: 'e', coverage: 1.5, arms: [{ name: 'a', model: 'baseline', weight: 1 }] }, /coverage/],
      [{ experiment: 'e', control: 'b', arms: [{ name: 'a', model: 'baseline', weight: 1 }] }, /control must name/],
      [{ experiment: 'e', arms: [{ name: 'a', model: 'baseline', version: 'x', weight: 1 }] }, /version/],
    ];
    for (const [raw, pattern] of bad)
      assert.throws(
        () => parseRoutingConfig(raw, MODELS),
        (e: Error) => e instanceof RoutingConfigError && pattern.test(e.message),
      );
  });
});

describe('RoutingSource', () => {
  it('loads the file, follows its changes, and keeps the old config when a new one is invalid', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pc-routing-'));
    const file = path.join(dir, 'routing.json');
    // Each change is awaited through the line the source logs when it applies or refuses a config.
    const log = new LogCapture();
    const source = new RoutingSource({
      file,
      defaultModel: 'baseline',
      knownModels: () => MODELS,
      log: pino({ level: 'info' }, log.stream),
      pollMs: 20,
    });
    assert.equal(source.select({ routingKey: 'k' }).arm, 'default');
    // Written as a ConfigMap update does: a new file renamed into place.
    const put = async (value: unknown) => {
      await writeFile(`${file}.tmp`, typeof value === 'string' ? value : JSON.stringify(value));
      await rename(`${file}.tmp`, file);
    };
    const applied = (experiment: string) => (l: LogLine) => l.msg === 'routing config applied' && l.experiment === experiment;
    const refused = (why: RegExp) => (l: LogLine) =>
      l.msg === 'routing config refused; the previous one stays in force' && why.test(String(l.error));
    const putAndSee = async (value: unknown, logged: (l: LogLine) => boolean, what: string) => {
      const from = log.mark();
      await put(value);
      await log.waitFor(logged, { from, what });
    };
    await put({ experiment: 'e1', arms: [{ name: 'only', model: 'dendritic', weight: 1 }] });
    await source.start(); // reads the file before it resolves
    try {
      assert.equal(source.select({ routingKey: 'k' }).model, 'dendritic');
      assert.equal(source.status().source, 'file');
      await putAndSee({ experiment: 'e2', arms: [{ name: 'back', model: 'baseline', weight: 1 }] }, applied('e2'), 'e2 applied');
      assert.equal(source.select({ routingKey: 'k' }).arm, 'back');
      await putAndSee('{ not json', refused(/not valid JSON/), 'the broken file refused');
      assert.match(source.status().lastError!.message, /not valid JSON/);
      assert.equal(source.select({ routingKey: 'k' }).arm, 'back', 'the last valid config stays in force');
      await putAndSee(
        { experiment: 'e3', arms: [{ name: 'x', model: 'ghost', weight: 1 }] },
        refused(/ghost/),
        'the unknown model refused',
      );
      assert.match(source.status().lastError!.message, /ghost/);
      assert.equal(source.select({ routingKey: 'k' }).arm, 'back', 'the last valid config stays in force');
      assert.throws(() => source.apply({ experiment: 'e4', arms: [] }, 'admin'), RoutingConfigError);
      source.apply({ experiment: 'e4', arms: [{ name: 'manual', model: 'dendritic', weight: 1 }] }, 'admin');
      assert.equal(source.status().source, 'admin');
      assert.equal(source.status().lastError, undefined);
      assert.equal(source.select({ routingKey: 'k' }).arm, 'manual');
    } finally {
      source.stop();
    }
  });
});
