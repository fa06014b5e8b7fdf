/**
 * The built service as a process (`node dist/src/main.js`, as the container
 * runs it):
 *  - the hostile-input corpus, three times over HTTP and gRPC: every answer
 *    right each time, the process up, peak memory bounded (the decompression
 *    bombs are refused from their headers) and no growth from round to round;
 *  - SIGTERM under load: the requests admitted before the signal all answered,
 *    the later ones refused cleanly (503/UNAVAILABLE with Retry-After, or a
 *    refused connection once the listener is closed), no connection reset,
 *    exit 0 within the drain timeout.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { clients } from '../grpc-clients';
import { sendCorpus } from '../support/hostile-client';
import { hostileCorpus } from '../support/hostile-corpus';
import { startServiceProcess } from '../support/processes';
import { describeFailures, grpcWorker, httpWorker, type Outcome, Traffic } from '../support/traffic';

const RECEIPT_SECRET = 'e2e-under-load-receipt-secret-0123';

/** Resident and peak resident memory of a process, in MB. */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

describe('the built service under hostile input', () => {
  it('answers the corpus three times over with bounded memory', async () => {
    const limits = {
      maxImageBytes: 10 * 1024 * 1024,
      maxJsonBytes: 32 * 1024 * 1024,
      maxBatchImages: 256,
      grpcMaxMessageBytes: 32 * 1024 * 1024,
    };
    const svc = await startServiceProcess({
      RECEIPT_SECRET,
      ADMIN_TOKEN: 'e2e-under-load-admin-token-0123',
      ROUTING_FILE: '/nonexistent/routing.json',
    });
    const c = clients(svc.grpcPort);
    try {
      const corpus = await hostileCorpus({ ...limits, receiptSecret: RECEIPT_SECRET, feedbackMaxAgeHours: 168 });
      const port = Number(new URL(svc.http).port);
      const rounds: Array<{ rss: number; peak: number }> = [];
      for (let round = 0; round < 3; round++) {
        const sent = await sendCorpus(corpus, { port, grpc: c });
        assert.ok(sent > 100);
        rounds.push(memory(svc.child.pid!));
      }
      assert.equal(svc.child.exitCode, null, 'the service is still running');
      assert.equal((await fetch(`${svc.http}/readyz`)).status, 200);
      // Peak: models, a 32 MB JSON body in flight, a 6000x6000 decode; nothing near a bomb's gigabytes.
      assert.ok(rounds[2].peak < 1024, `peak resident memory ${rounds[2].peak.toFixed(0)} MB`);
      // No per-round growth beyond allocator noise once the first round has warmed every path.
      assert.ok(
        rounds[2].rss < rounds[0].rss * 1.25 + 20,
        `resident memory by round: ${rounds.map((r) => r.rss.toFixed(0)).join(', ')} MB`,
      );
    } finally {
      c.close();
      await svc.stop();
    }
  });
});

describe('SIGTERM under load', () => {
  it('answers every admitted request, refuses the rest cleanly and exits 0 in time', async () => {
    const drainTimeoutMs = 10_000;
    const svc = await startServiceProcess({
      DRAIN_TIMEOUT_MS: String(drainTimeoutMs),
      LOG_LEVEL: 'info',
      ROUTING_FILE: '/nonexistent/routing.json',
    });
    const port = Number(new URL(svc.http).port);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const c = clients(svc.grpcPort);
    const pixels = Array.from({ length: 784 }, (_, i) => (i * 13) % 256);
    // The dendritic model (the slower one) so that requests are in flight when the signal lands.
    const body = { images: Array.from({ length: 16 }, () => ({ pixels })), model: 'dendritic' };
    const refused = (o: Outcome) => !o.ok;
    const traffic = new Traffic(
      [
        ...Array.from({ length: 12 }, () => httpWorker(port, agent, '/v1/classify/batch', body)),
        ...Array.from({ length: 4 }, () =>
          grpcWorker(c.product, 'ClassifyBatch', {
            images: body.images.map((i) => ({ pixels: { values: i.pixels } })),
            model: 'dendritic',
          }),
        ),
      ],
      refused, // a refused client goes elsewhere, as behind a load balancer
    );
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const signalAt = performance.now();
      svc.child.kill('SIGTERM');
      const outcomes = await traffic.finished();
      const code = await svc.exited;
      const exitMs = performance.now() - signalAt;
      assert.equal(code, 0, svc.output().slice(-2000));
      assert.ok(exitMs < drainTimeoutMs, `exited ${exitMs.toFixed(0)} ms after the signal`);

      const stopped = svc
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l))
        .find((l) => l.msg === 'stopped');
      assert.ok(stopped, 'the service logs how the drain went');
      assert.equal(stopped.drained, true);
      assert.ok(stopped.inFlightAtDrain > 0, 'the signal landed with requests in flight');
      assert.equal(stopped.finished, stopped.inFlightAtDrain, 'every admitted request was answered');
      assert.equal(stopped.stillInFlight, 0);

      const before = outcomes.filter((o) => o.answeredAt < signalAt);
      assert.ok(before.length > 10 && before.every((o) => o.ok), describeFailures(before));
      const answeredAfter = outcomes.filter((o) => o.answeredAt >= signalAt && o.ok);
      assert.ok(
        answeredAfter.length >= stopped.inFlightAtDrain,
        `${answeredAfter.length} answers after the signal, ${stopped.inFlightAtDrain} in flight at it`,
      );
      for (const o of outcomes.filter((x) => !x.ok)) {
        const clean =
          (o.transport === 'http' && o.status === 503 && o.code === 'UNAVAILABLE' && o.retryAfter === '1' && o.connection === 'close') ||
          (o.transport === 'http' && o.status === 'ECONNREFUSED') ||
          (o.transport === 'grpc' && o.status === 14);
        assert.ok(
          clean,
          `not a clean refusal: ${o.transport} ${o.status} ${o.code ?? ''} ${o.message ?? ''} sent ${(o.sentAt - signalAt).toFixed(1)} answered ${(o.answeredAt - signalAt).toFixed(1)} ms after the signal; every answer after it [transport, status, sent ms, answered ms]: ${JSON.stringify(outcomes.filter((x) => x.answeredAt >= signalAt).map((x) => [x.transport, x.status, Math.round(x.sentAt - signalAt), Math.round(x.answeredAt - signalAt)]))}`,
        );
      }
      assert.equal(outcomes.filter((o) => !o.ok).length, 16, 'each client was refused once, then stopped');
    } finally {
      await traffic.stop();
      agent.destroy();
      c.close();
      await svc.stop();
    }
  });
});
