/**
 * The payload logger's CloudEvents sink against real HTTP servers on
 * 127.0.0.1: a receiver that answers (both events of every record, as
 * KServe's inference logger sends them), one that takes connections and
 * never answers (the caller is never held up, the queue bound holds,
 * sockets stay bounded, timeouts and drops are counted, close() keeps its
 * bound), one that answers 500, and a port where nothing listens.
 *
 * Every bound here is a ManualTimers timer that expires when the test fires
 * it, and every wait is for an event (a request the server received, an
 * outcome the logger emitted); withTimeout is only the safety net.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import type { SinkCounts } from '../../src/monitoring/payload/counts';
import { HttpCloudEventSink } from '../../src/monitoring/payload/http-sink';
import { PayloadLogger } from '../../src/monitoring/payload/payload-log';
import { answerBody } from '../../src/monitoring/payload/record';
import { ManualTimers } from '../support/manual-timers';
import { payloadRecord, pixelsOf } from '../support/payload-records';
import { withTimeout } from '../support/wait';

interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** An HTTP server that keeps what it receives and answers with `answer` (or never, when it returns false). */
class Receiver extends EventEmitter {
  readonly received: Received[] = [];
  openSockets = 0;
  private readonly server: http.Server;

  constructor(answer: (res: http.ServerResponse) => boolean) {
    super();
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        this.emit('change');
        if (answer(res)) res.end();
      });
    });
    this.server.on('connection', (socket) => {
      this.openSockets++;
      this.emit('change');
      socket.on('close', () => {
        this.openSockets--;
        this.emit('change');
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/events`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Resolves once `holds()` is true: checked now and at every `event` of `emitter`. */
function until(emitter: EventEmitter, event: string, holds: () => boolean, what: string): Promise<void> {
  let check: () => void = () => undefined;
  const reached = new Promise<void>((resolve) => {
    check = () => {
      if (holds()) resolve();
    };
    emitter.on(event, check);
    check();
  });
  return withTimeout(reached, what, 30_000).finally(() => emitter.off(event, check));
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function receiver(answer: (res: http.ServerResponse) => boolean): Promise<{ server: Receiver; url: string }> {
  const server = new Receiver(answer);
  const url = await server.start();
  cleanups.push(() => server.stop());
  return { server, url };
}

function logger(sink: HttpCloudEventSink, opts: { queue: number; timers: ManualTimers }): PayloadLogger {
  const log = new PayloadLogger({ sinks: [sink], queue: opts.queue, timers: opts.timers });
  cleanups.push(async () => {
    const closing = log.close(5000);
    opts.timers.fire();
    await closing;
  });
  return log;
}

const httpCounts = (log: PayloadLogger): SinkCounts => log.counts().http;

describe('payload log: CloudEvents to a real HTTP receiver', () => {
  it('sends a request and a response event per record, binary mode, sharing the prediction id', async () => {
    const { server, url } = await receiver((res) => {
      res.statusCode = 200;
      return true;
    });
    const timers = new ManualTimers();
    const sink = new HttpCloudEventSink(url, { source: '/product-classifier/pod-a', namespace: 'shop', timers });
    const log = logger(sink, { queue: 10, timers });
    const records = [
      payloadRecord(1, { reason: 'flagged' }),
      payloadRecord(2, {
        reason: 'abstained',
        transport: 'grpc',
        // An abstained answer carries no label at all.
        answer: (({ label: _label, ...rest }) => ({ ...rest, abstained: 'out-of-distribution' }))(payloadRecord(2).answer),
      }),
      payloadRecord(3, { reason: 'sampled', arm: 'control', model: 'baseline', version: '1', transport: 'oip-http' }),
    ];
    for (const r of records) assert.equal(log.log(r), true);
    await until(log, 'settled', () => httpCounts(log).sent === 3, 'three records sent');

    assert.equal(server.received.length, 6);
    for (const [i, r] of records.entries()) {
      const events = server.received.filter((e) => e.headers['ce-id'] === r.id);
      assert.deepEqual(
        events.map((e) => e.headers['ce-type']),
        ['org.kubeflow.serving.inference.request', 'org.kubeflow.serving.inference.response'],
        'the request event first, then the response event',
      );
      for (const e of events) {
        assert.equal(e.method, 'POST');
        assert.equal(e.url, '/events');
        assert.equal(e.headers['content-type'], 'application/json');
        assert.equal(e.headers['content-length'], String(Buffer.byteLength(e.body)));
        assert.equal(e.headers['ce-specversion'], '1.0');
        assert.equal(e.headers['ce-source'], '/product-classifier/pod-a');
        assert.equal(e.headers['ce-time'], r.time.toISOString());
        assert.equal(e.headers['ce-inferenceservicename'], 'product-classifier');
        assert.equal(e.headers['ce-component'], 'predictor');
        assert.equal(e.headers['ce-namespace'], 'shop');
        assert.equal(e.headers['ce-endpoint'], r.arm);
        assert.equal(e.headers['ce-model'], r.model);
        assert.equal(e.headers['ce-modelversion'], r.version);
        assert.equal(e.headers['ce-transport'], r.transport);
        assert.equal(e.headers['ce-reason'], r.reason);
      }
      const request = JSON.parse(events[0].body);
      assert.deepEqual(request, {
        id: r.id,
        inputs: [{ name: 'pixels', shape: [1, 28, 28], datatype: 'UINT8', data: Array.from(pixelsOf(i + 1)) }],
      });
      assert.deepEqual(JSON.parse(events[1].body), answerBody(r));
    }
    assert.ok(sink.sockets() <= 4);
    assert.equal(await log.flush(5000), true);
    assert.equal(timers.armed(), 0, 'every post’s timer cleared once answered');
  });

  it('against a receiver that never answers: the caller is never held up, the queue and sockets stay bounded, timeouts are counted', async () => {
    const { server, url } = await receiver(() => false);
    const timers = new ManualTimers();
    const sink = new HttpCloudEventSink(url, { timeoutMs: 1000, concurrency: 4, timers });
    const log = logger(sink, { queue: 10, timers });

    // 200 predictions logged in one synchronous run: each call answers at once, with a boolean.
    const answers = Array.from({ length: 200 }, (_, i) => log.log(payloadRecord(i)));
    assert.ok(answers.every((a) => typeof a === 'boolean'));
    assert.equal(answers.filter(Boolean).length, 10);
    assert.equal(server.received.length, 0, 'nothing was posted in the caller’s turn');
    assert.deepEqual(httpCounts(log), {
      queued: 10,
      sent: 0,
      dropped: { queue_full: 190, sink_error: 0, timeout: 0, shutdown: 0 },
      pending: 10,
      inFlight: 0,
    });

    // Four posts in flight (the concurrency), on at most four sockets; the others wait in the queue.
    await until(server, 'change', () => server.received.length === 4, 'four posts received');
    assert.deepEqual([httpCounts(log).inFlight, httpCounts(log).pending], [4, 6]);
    assert.equal(timers.armed(1000), 4, 'one timeout per post');
    assert.ok(sink.sockets() <= 4);

    // Their timeouts expire: four timeouts, and the next four go out.
    assert.equal(timers.fire(1000), 4);
    await until(log, 'settled', () => httpCounts(log).dropped.timeout === 4, 'four timeouts');
    await until(server, 'change', () => server.received.length === 8, 'the next four posts');
    assert.ok(sink.sockets() <= 4);
    assert.equal(timers.fire(1000), 4);
    await until(server, 'change', () => server.received.length === 10, 'the last two posts');
    assert.equal(httpCounts(log).dropped.timeout, 8);
    assert.ok(
      server.received.every((e) => e.headers['ce-type'] === 'org.kubeflow.serving.inference.request'),
      'no response event after a lost request event',
    );

    // close() keeps its bound: the two still in flight are dropped as shutdown and their sockets closed.
    const closing = log.close(5000);
    assert.equal(timers.armed(5000), 1);
    timers.fire(5000);
    assert.equal(await closing, false);
    assert.deepEqual(httpCounts(log), {
      queued: 10,
      sent: 0,
      dropped: { queue_full: 190, sink_error: 0, timeout: 8, shutdown: 2 },
      pending: 0,
      inFlight: 0,
    });
    assert.equal(sink.sockets(), 0);
    await until(server, 'change', () => server.openSockets === 0, 'every connection closed');
    assert.equal(log.log(payloadRecord(999)), false, 'closed: dropped, counted, not thrown');
    assert.equal(httpCounts(log).dropped.shutdown, 3);
  });

  it('a receiver that answers 500: every record a sink_error, no response event sent', async () => {
    const { server, url } = await receiver((res) => {
      res.statusCode = 500;
      return true;
    });
    const timers = new ManualTimers();
    const sink = new HttpCloudEventSink(url, { timers });
    const log = logger(sink, { queue: 10, timers });
    for (let i = 0; i < 3; i++) log.log(payloadRecord(i));
    await until(log, 'settled', () => httpCounts(log).dropped.sink_error === 3, 'three sink errors');
    assert.deepEqual(httpCounts(log).dropped, { queue_full: 0, sink_error: 3, timeout: 0, shutdown: 0 });
    assert.equal(httpCounts(log).sent, 0);
    assert.deepEqual(server.received.map((e) => e.headers['ce-type']).sort(), Array(3).fill('org.kubeflow.serving.inference.request'));
    assert.equal(timers.armed(), 0);
  });

  it('nothing listening: a sink_error per record', async () => {
    const { server, url } = await receiver(() => true);
    await server.stop();
    const timers = new ManualTimers();
    const log = logger(new HttpCloudEventSink(url, { timers }), { queue: 10, timers });
    for (let i = 0; i < 2; i++) log.log(payloadRecord(i));
    await until(log, 'settled', () => httpCounts(log).dropped.sink_error === 2, 'two sink errors');
    assert.equal(httpCounts(log).sent, 0);
  });
});
