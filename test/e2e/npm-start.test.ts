/**
 * The service stops cleanly however the README starts it: a SIGTERM or
 * SIGINT sent to `npm start` reaches the service, which drains and exits,
 * leaving nothing listening (npm runs it with `exec`, so the signal npm
 * passes on lands on the service itself, not on a shell in between).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startWithNpm } from '../support/processes';
import { withTimeout } from '../support/wait';

describe('npm start', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`passes ${signal} on: the service drains, exits 0 and stops listening`, async () => {
      const svc = await startWithNpm();
      svc.child.kill(signal); // to npm, as a terminal or a supervisor would
      const code = await withTimeout(svc.exited, `npm start to exit after ${signal}`, 30_000);
      assert.equal(code, 0, svc.output());
      const lines = svc
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg?: string; signal?: string; drained?: boolean });
      assert.ok(
        lines.some((l) => l.msg === 'draining' && l.signal === signal),
        `the service heard ${signal}`,
      );
      assert.ok(
        lines.some((l) => l.msg === 'stopped' && l.drained === true),
        'the service drained and stopped',
      );
      await assert.rejects(fetch(`${svc.http}/healthz`), 'nothing is left listening on the HTTP port');
    });
  }
});
