/**
 * The built service as a process (`node dist/src/main.js`, as the container
 * runs it):
 *  - the hostile-input corpus, three times over HTTP and gRPC: every answer
 *    right each time and the process still up and ready afterwards. (How much
 *    memory it takes meanwhile is a figure, not a behaviour: the benchmark
 *    measures it, bench/hostile-memory.ts.)
 *  - SIGTERM under load: the requests admitted before the signal all answered,
 *    the later ones refused cleanly (503/UNAVAILABLE with Retry-After, or a
 *    refused connection once the listener is closed), no connection reset,
 *    every request sent accounted for, and exit 0 with the drain finished
 *    within its timeout (as the service itself reports).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { clients } from '../grpc-clients';
import { sendCorpus } from '../support/hostile-client';
import { hostileCorpus } from '../support/hostile-corpus';
import { startServiceProcess } from '../support/processes';
import { describeFailures, grpcWorker, httpWorker, type Outcome, Traffic } from '../support/traffic';

const RECEIPT_SECRET = 'e2e-under-load-receipt-secret-0123';

describe('the built service under hostile input', () => {
  it('answers the corpus three times over and stays up', async () => {
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
      // sendCorpus checks every answer as it comes; a wrong one fails the round.
      for (let round = 0; round < 3; round++) {
        const sent = await sendCorpus(corpus, { port, grpc: c });
        assert.ok(sent > 100, `round ${round + 1} sent the corpus's cases (${sent})`);
      }
      assert.equal(svc.child.exitCode, null, 'the service is still running');
      assert.equal(svc.child.signalCode, null, 'the service was not killed');
      assert.equal((await fetch(`${svc.http}/readyz`)).status, 200);
    } finally {
      c.close();
      await svc.stop();
    }
  });
});

describe('SIGTERM under load', () => {
  it('answers every admitted request, refuses the rest cleanly and exits 0 with the drain done', async () => {
    const svc = await startServiceProcess({
      DRAIN_TIMEOUT_MS: '10000',
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
      // The signal goes once every client has been answered twice: the load is on, whatever the machine's speed.
      await traffic.everyWorkerSince(traffic.mark());
      const signalAt = performance.now();
      svc.child.kill('SIGTERM');
      const outcomes = await traffic.finished();
      const code = await svc.exited;
      assert.equal(code, 0, svc.output().slice(-2000));

      const stopped = svc
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l))
        .find((l) => l.msg === 'stopped');
      assert.ok(stopped, 'the service logs how the drain went');
      // drained: every admitted request answered before DRAIN_TIMEOUT_MS ran out, by the service's own clock.
      assert.equal(stopped.drained, true);
      assert.ok(stopped.inFlightAtDrain > 0, 'the signal landed with requests in flight');
      assert.equal(stopped.finished, stopped.inFlightAtDrain, 'every admitted request was answered');
      assert.equal(stopped.stillInFlight, 0);

      // Every request sent has exactly one outcome: answered, or refused in one of the documented ways.
      assert.equal(outcomes.length, traffic.sent, 'answered + refused = sent');
      const clients = new Set(outcomes.map((o) => o.worker)).size;
      const before = outcomes.filter((o) => o.answeredAt < signalAt);
      assert.equal(new Set(before.map((o) => o.worker)).size, clients, 'every client was answered before the signal');
      assert.ok(
        before.every((o) => o.ok),
        describeFailures(before),
      );
      const answeredAfter = outcomes.filter((o) => o.answeredAt >= signalAt && o.ok);
      assert.ok(
        answeredAfter.length >= stopped.inFlightAtDrain,
        `${answeredAfter.length} answers after the signal, ${stopped.inFlightAtDrain} in flight at it`,
      );
      const notOk = outcomes.filter((x) => !x.ok);
      for (const o of notOk) {
        const clean =
          (o.transport === 'http' && o.status === 503 && o.code === 'UNAVAILABLE' && o.retryAfter === '1' && o.connection === 'close') ||
          (o.transport === 'http' && o.status === 'ECONNREFUSED') ||
          (o.transport === 'grpc' && o.status === 14);
        assert.ok(
          clean,
          `not a clean refusal (a reset or another error): ${o.transport} ${o.status} ${o.code ?? ''} ${o.message ?? ''} sent ${(o.sentAt - signalAt).toFixed(1)} answered ${(o.answeredAt - signalAt).toFixed(1)} ms after the signal; every answer after it [transport, status, sent ms, answered ms]: ${JSON.stringify(outcomes.filter((x) => x.answeredAt >= signalAt).map((x) => [x.transport, x.status, Math.round(x.sentAt - signalAt), Math.round(x.answeredAt - signalAt)]))}`,
        );
      }
      // However many were refused (that depends on speed), each 503 a client saw was counted by the service.
      const http503 = notOk.filter((o) => o.status === 503).length;
      assert.ok(stopped.refused >= http503, `the service counted ${stopped.refused} refusals, the clients saw ${http503} 503s`);
    } finally {
      await traffic.stop();
      agent.destroy();
      c.close();
      await svc.stop();
    }
  });
});
