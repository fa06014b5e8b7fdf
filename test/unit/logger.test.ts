/**
 * The service's log destination (src/core/logger.ts): asynchronous and
 * gathered into larger writes, yet no line lost when the process exits
 * (process.exit, an uncaught exception) and every line out within the
 * periodic flush while the process idles. Each case is a child process
 * writing to a pipe, as a container runtime reads stdout.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { LOG_BUFFER } from '../../src/core/logger';

const LOGGER = path.resolve(__dirname, '..', '..', 'src', 'core', 'logger.js');

interface Child {
  /** Resolves with the lines written to stdout so far, once `count` have arrived (or the child has exited). */
  lines(count: number): Promise<string[]>;
  exited: Promise<{ code: number | null; stdout: string[]; stderr: string }>;
  kill(): void;
}

function child(script: string): Child {
  const proc = spawn(process.execPath, ['-e', `const log = require(${JSON.stringify(LOGGER)}).createLogger('info');\n${script}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiting: Array<{ count: number; resolve: (l: string[]) => void }> = [];
  const complete = () => out.split('\n').filter((l) => l.length > 0);
  const check = (force = false) => {
    for (const w of [...waiting]) {
      if (force || complete().length >= w.count) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(complete());
      }
    }
  };
  proc.stdout.on('data', (d) => {
    out += d;
    check();
  });
  proc.stderr.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; stdout: string[]; stderr: string }>((resolve) =>
    proc.on('close', (code) => {
      check(true);
      resolve({ code, stdout: complete(), stderr: err });
    }),
  );
  return {
    lines: (count) =>
      new Promise((resolve) => {
        waiting.push({ count, resolve });
        check();
      }),
    exited,
    kill: () => proc.kill('SIGKILL'),
  };
}

const numbered = (lines: string[]) => lines.map((l) => (JSON.parse(l) as { i: number }).i);

describe('log destination', () => {
  it('gathers lines into writes of about 4 KiB, flushed at least every 100 ms', () => {
    assert.deepEqual(LOG_BUFFER, { minLength: 4096, periodicFlushMs: 100 });
  });

  it('loses no line when the process exits at once after logging', async () => {
    const c = child(`for (let i = 0; i < 5000; i++) log.info({ i }, 'line'); process.exit(0);`);
    const { code, stdout } = await c.exited;
    assert.equal(code, 0);
    assert.deepEqual(
      numbered(stdout),
      Array.from({ length: 5000 }, (_, i) => i),
    );
  });

  it('loses no line when the process dies of an uncaught exception', async () => {
    const c = child(`for (let i = 0; i < 300; i++) log.info({ i }, 'line'); setImmediate(() => { throw new Error('boom'); });`);
    const { code, stdout, stderr } = await c.exited;
    assert.notEqual(code, 0);
    assert.match(stderr, /boom/);
    assert.equal(numbered(stdout).length, 300);
  });

  it('writes a few lines out while the process idles, within the periodic flush', { timeout: 30_000 }, async () => {
    // The child lives until killed: without the periodic flush its two short lines would wait for 4 KiB or the exit.
    const c = child(`log.info({ i: 0 }, 'ready'); log.info({ i: 1 }, 'idle'); setInterval(() => {}, 60_000);`);
    try {
      assert.deepEqual(numbered(await c.lines(2)), [0, 1]);
    } finally {
      c.kill();
      await c.exited;
    }
  });
});
