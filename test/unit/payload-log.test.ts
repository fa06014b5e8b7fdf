/**
 * The payload logger (src/monitoring/payload/): the sampling policy, the
 * record's encodings and CloudEvents headers, the bounded queue and what it
 * counts, shutdown within its bound, and the JSON-lines file sink with its
 * rotation, in a temporary directory.
 *
 * Sinks here are scripted: a send settles when the test says. The sender
 * runs in setImmediate, so `turn()` (one event-loop turn) is the point at
 * which it has taken what it will; bounds are ManualTimers that expire
 * when the test fires them. No test waits for real time.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { cloudEvents, headerValue, REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE } from '../../src/monitoring/payload/cloudevents';
import type { PayloadOutcome, Settled } from '../../src/monitoring/payload/counts';
import { createPayloadLogger } from '../../src/monitoring/payload/factory';
import { FileJsonlSink } from '../../src/monitoring/payload/file-sink';
import { HttpCloudEventSink } from '../../src/monitoring/payload/http-sink';
import { PayloadLogger } from '../../src/monitoring/payload/payload-log';
import { answerBody, inferenceRequestBody, payloadLine, type PayloadRecord } from '../../src/monitoring/payload/record';
import { checkRate, sampleReason, shouldLog } from '../../src/monitoring/payload/sampling';
import type { PayloadSink, SinkOutcome } from '../../src/monitoring/payload/sink';
import { ManualTimers } from '../support/manual-timers';
import { payloadRecord, pixelsOf } from '../support/payload-records';
import { LogCapture } from '../support/wait';

/** One event-loop turn: the sender (setImmediate) has run, and the promise callbacks before it. */
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** A sink whose sends settle when the test settles them. */
function heldSink(name = 'held', concurrency = 1) {
  const calls: { record: PayloadRecord; settle: (o: SinkOutcome) => void }[] = [];
  const state = { closed: false };
  const sink: PayloadSink = {
    name,
    concurrency,
    send: (record) => new Promise<SinkOutcome>((settle) => calls.push({ record, settle })),
    close: async () => {
      state.closed = true;
    },
  };
  return { sink, calls, state };
}

/** A source of "random" numbers that returns the given ones in turn, and counts its calls. */
function scripted(values: number[]) {
  let i = 0;
  const random = () => values[i++ % values.length];
  return { random, calls: () => i };
}

describe('payload log: sampling policy', () => {
  it('logs every flagged, abstained and low-confidence prediction, whatever the rate, without drawing', () => {
    const r = scripted([0.99]);
    for (const rate of [0, 0.5, 1]) {
      assert.equal(shouldLog({ rate, flagged: true, random: r.random }), true);
      assert.equal(shouldLog({ rate, abstained: true, random: r.random }), true);
      assert.equal(shouldLog({ rate, lowConfidence: true, random: r.random }), true);
    }
    assert.equal(r.calls(), 0);
  });

  it('names the first reason that applies: flagged, abstained, low-confidence, sampled', () => {
    const random = () => 0;
    assert.equal(sampleReason({ rate: 1, flagged: true, abstained: true, lowConfidence: true, random }), 'flagged');
    assert.equal(sampleReason({ rate: 1, abstained: true, lowConfidence: true, random }), 'abstained');
    assert.equal(sampleReason({ rate: 1, lowConfidence: true, random }), 'low-confidence');
    assert.equal(sampleReason({ rate: 1, random }), 'sampled');
    assert.equal(sampleReason({ rate: 0, random }), undefined);
  });

  it('samples ordinary traffic at the rate: random() < rate', () => {
    const r = scripted([0.1, 0.299, 0.3, 0.9, 0]);
    assert.deepEqual(
      [1, 2, 3, 4, 5].map(() => shouldLog({ rate: 0.3, random: r.random })),
      [true, true, false, false, true],
    );
    const never = scripted([0]);
    assert.equal(shouldLog({ rate: 0, random: never.random }), false);
    assert.equal(never.calls(), 0, 'rate 0 draws nothing');
    assert.equal(shouldLog({ rate: 1, random: () => 0.999999 }), true);
  });

  it('refuses a rate outside 0..1', () => {
    for (const bad of [-0.01, 1.01, Number.NaN]) assert.throws(() => checkRate(bad), /within 0\.\.1/);
    assert.equal(checkRate(0.25), 0.25);
  });

  it('the logger samples at its own rate with the injected random source', () => {
    const r = scripted([0.04, 0.06]);
    const logger = new PayloadLogger({ sinks: [heldSink().sink], rate: 0.05, random: r.random });
    assert.equal(logger.sample({}), 'sampled');
    assert.equal(logger.sample({}), undefined);
    assert.equal(logger.sample({ abstained: true }), 'abstained');
    assert.equal(r.calls(), 2);
  });
});

describe('payload log: record encoding', () => {
  const rec = payloadRecord(3);

  it('carries the input as the OIP v2 request this service accepts (pixels, UINT8, [1, 28, 28])', () => {
    const body = inferenceRequestBody(rec);
    assert.deepEqual(Object.keys(body), ['id', 'inputs']);
    assert.equal(body.id, 'pred-0003');
    assert.equal(body.inputs.length, 1);
    const [t] = body.inputs;
    assert.deepEqual([t.name, t.datatype, t.shape], ['pixels', 'UINT8', [1, 28, 28]]);
    assert.deepEqual(t.data, Array.from(pixelsOf(3)));
  });

  it('refuses an input whose pixel count is not width x height', () => {
    assert.throws(() => inferenceRequestBody({ ...rec, input: { width: 28, height: 28, pixels: new Uint8Array(10) } }), /10 pixels/);
  });

  it('carries the answer with the prediction id, model, version and arm', () => {
    assert.deepEqual(answerBody(rec), {
      predictionId: 'pred-0003',
      model: 'dendritic',
      version: '2',
      arm: 'candidate',
      ...rec.answer,
    });
  });

  it('writes one JSON line holding the request and the response', () => {
    const line = payloadLine(rec);
    assert.ok(line.endsWith('\n'));
    assert.equal(line.indexOf('\n'), line.length - 1, 'one line');
    assert.deepEqual(JSON.parse(line), {
      id: 'pred-0003',
      time: '2025-01-02T03:04:05.003Z',
      model: 'dendritic',
      version: '2',
      arm: 'candidate',
      transport: 'http',
      reason: 'low-confidence',
      request: inferenceRequestBody(rec),
      response: answerBody(rec),
    });
  });
});

describe('payload log: CloudEvents (binary mode)', () => {
  const rec = payloadRecord(7, { reason: 'flagged', transport: 'oip-grpc' });
  const from = { source: '/product-classifier/pod-a', inferenceService: 'product-classifier' };

  it('builds the request and the response event, sharing the prediction id', () => {
    const [request, response] = cloudEvents(rec, from);
    const common = {
      'content-type': 'application/json',
      'ce-specversion': '1.0',
      'ce-id': 'pred-0007',
      'ce-source': '/product-classifier/pod-a',
      'ce-time': '2025-01-02T03:04:05.007Z',
      'ce-inferenceservicename': 'product-classifier',
      'ce-component': 'predictor',
      'ce-endpoint': 'candidate',
      'ce-model': 'dendritic',
      'ce-modelversion': '2',
      'ce-transport': 'oip-grpc',
      'ce-reason': 'flagged',
    };
    assert.deepEqual(request.headers, { ...common, 'ce-type': REQUEST_EVENT_TYPE });
    assert.deepEqual(response.headers, { ...common, 'ce-type': RESPONSE_EVENT_TYPE });
    assert.equal(REQUEST_EVENT_TYPE, 'org.kubeflow.serving.inference.request');
    assert.equal(RESPONSE_EVENT_TYPE, 'org.kubeflow.serving.inference.response');
    assert.deepEqual(JSON.parse(request.body), inferenceRequestBody(rec));
    assert.deepEqual(JSON.parse(response.body), answerBody(rec));
  });

  it('adds ce-namespace when one is configured', () => {
    const [request] = cloudEvents(rec, { ...from, namespace: 'shop' });
    assert.equal(request.headers['ce-namespace'], 'shop');
    assert.equal(cloudEvents(rec, from)[0].headers['ce-namespace'], undefined);
  });

  it('extension names are lowercase letters and digits, as CloudEvents requires', () => {
    for (const name of Object.keys(cloudEvents(rec, { ...from, namespace: 'x' })[0].headers)) {
      if (name.startsWith('ce-')) assert.match(name.slice(3), /^[a-z0-9]+$/);
    }
  });

  it('percent-encodes space, double quote, percent and anything outside printable ASCII', () => {
    assert.equal(headerValue('a b"c%d\u00e9!~'), 'a%20b%22c%25d%C3%A9!~');
    assert.equal(headerValue('2025-01-02T03:04:05.007Z'), '2025-01-02T03:04:05.007Z');
    const [request] = cloudEvents({ ...rec, arm: 'new arm' }, from);
    assert.equal(request.headers['ce-endpoint'], 'new%20arm');
  });

  it('the HTTP sink refuses a URL that is not http or https', () => {
    assert.throws(() => new HttpCloudEventSink('ftp://example.com/'), /http or https/);
    assert.throws(() => new HttpCloudEventSink('http://127.0.0.1:1/', { concurrency: 0 }), /concurrency/);
  });
});

describe('payload log: the queue', () => {
  it('holds at most `queue` records: log() answers at once, drops and counts the rest', async () => {
    const { sink, calls } = heldSink('held', 1);
    const logger = new PayloadLogger({ sinks: [sink], queue: 3 });
    const answers = Array.from({ length: 10 }, (_, i) => logger.log(payloadRecord(i)));
    assert.deepEqual(answers, [true, true, true, false, false, false, false, false, false, false]);
    assert.equal(calls.length, 0, 'nothing is sent in the caller’s turn');
    assert.deepEqual(logger.counts().held, {
      queued: 3,
      sent: 0,
      dropped: { queue_full: 7, sink_error: 0, timeout: 0, shutdown: 0 },
      pending: 3,
      inFlight: 0,
    });

    await turn();
    assert.equal(calls.length, 1, 'one in flight: the sink’s concurrency');
    assert.deepEqual([logger.counts().held.pending, logger.counts().held.inFlight], [2, 1]);
    assert.equal(logger.log(payloadRecord(10)), true, 'room again once the sender took one');

    const outcomes: SinkOutcome[] = ['sent', 'sink_error', 'timeout', 'sent'];
    for (const [i, outcome] of outcomes.entries()) {
      calls[i].settle(outcome);
      await turn();
    }
    assert.deepEqual(
      calls.map((c) => c.record.id),
      ['pred-0000', 'pred-0001', 'pred-0002', 'pred-0010'],
      'in order',
    );
    assert.deepEqual(logger.counts().held, {
      queued: 4,
      sent: 2,
      dropped: { queue_full: 7, sink_error: 1, timeout: 1, shutdown: 0 },
      pending: 0,
      inFlight: 0,
    });
  });

  it('tells an injected counter (a prom-client Counter as it is) and emits every outcome', async () => {
    const registry = new Registry();
    const counter = new Counter({
      name: 'classifier_payload_log_records_total',
      help: 'test',
      labelNames: ['sink', 'outcome'],
      registers: [registry],
    });
    const { sink, calls } = heldSink('http', 2);
    const logger = new PayloadLogger({ sinks: [sink], queue: 2, counter });
    const settled: Settled[] = [];
    logger.on('settled', (s: Settled) => settled.push(s));
    for (let i = 0; i < 3; i++) logger.log(payloadRecord(i));
    await turn();
    calls[0].settle('sent');
    calls[1].settle('timeout');
    await turn();
    const values = (await counter.get()).values.map((v) => [v.labels.sink, v.labels.outcome, v.value]);
    assert.deepEqual(
      values.sort((a, b) => String(a[1]).localeCompare(String(b[1]))),
      [
        ['http', 'queue_full', 1],
        ['http', 'sent', 1],
        ['http', 'timeout', 1],
      ],
    );
    assert.deepEqual(settled, [
      { sink: 'http', id: 'pred-0002', outcome: 'queue_full' },
      { sink: 'http', id: 'pred-0000', outcome: 'sent' },
      { sink: 'http', id: 'pred-0001', outcome: 'timeout' },
    ]);
  });

  it('never throws into the caller: a sink that throws or rejects, a counter or listener that throws', async () => {
    let n = 0;
    const sink: PayloadSink = {
      name: 'bad',
      concurrency: 1,
      send: () => {
        n++;
        if (n === 1) throw new Error('thrown');
        return Promise.reject(new Error('rejected'));
      },
      close: async () => undefined,
    };
    const logger = new PayloadLogger({
      sinks: [sink],
      queue: 1,
      counter: {
        inc: () => {
          throw new Error('counter');
        },
      },
    });
    logger.on('settled', () => {
      throw new Error('listener');
    });
    assert.equal(logger.log(payloadRecord(0)), true);
    assert.equal(logger.log(payloadRecord(1)), false, 'queue full, counted, not thrown');
    await turn();
    assert.equal(logger.log(payloadRecord(2)), true);
    await turn();
    await turn();
    assert.deepEqual(logger.counts().bad.dropped, { queue_full: 1, sink_error: 2, timeout: 0, shutdown: 0 });
  });

  it('logs (pino) when a sink starts failing and when it recovers, not per record, and never the payload', async () => {
    const capture = new LogCapture();
    const { sink, calls } = heldSink('http', 1);
    const logger = new PayloadLogger({ sinks: [sink], queue: 1, logger: pino({ level: 'info' }, capture.stream) });
    for (const outcome of ['timeout', 'sink_error', 'sent', 'sent'] as SinkOutcome[]) {
      logger.log(payloadRecord(calls.length));
      await turn();
      calls[calls.length - 1].settle(outcome);
      await turn();
    }
    logger.log(payloadRecord(8));
    logger.log(payloadRecord(9));
    logger.log(payloadRecord(10));
    await capture.waitFor((l) => l.msg === 'payload log queue full: dropping records');
    assert.deepEqual(
      capture.lines.map((l) => [l.msg, l.sink, l.outcome]),
      [
        ['payload log sink failing: dropping records', 'http', 'timeout'],
        ['payload log sink recovered', 'http', undefined],
        ['payload log queue full: dropping records', 'http', undefined],
      ],
    );
    assert.ok(capture.lines.every((l) => !JSON.stringify(l).includes('pixels')));
  });

  it('gives each sink its own queue: a hanging sink does not hold up the other', async () => {
    const hanging = heldSink('http', 1);
    const written: string[] = [];
    const file: PayloadSink = {
      name: 'file',
      concurrency: 1,
      send: async (r) => {
        written.push(r.id);
        return 'sent';
      },
      close: async () => undefined,
    };
    const logger = new PayloadLogger({ sinks: [hanging.sink, file], queue: 2 });
    for (let i = 0; i < 5; i++) logger.log(payloadRecord(i));
    for (let i = 0; i < 5; i++) await turn();
    assert.equal(hanging.calls.length, 1);
    assert.deepEqual(logger.counts().http.dropped.queue_full, 3);
    assert.deepEqual(logger.counts().file.dropped.queue_full, 3, 'the file sink had the same two places at the moment of logging');
    assert.deepEqual(written, ['pred-0000', 'pred-0001']);
  });

  it('flush() resolves true once everything is written, and false at its bound, dropping nothing', async () => {
    const timers = new ManualTimers();
    const { sink, calls } = heldSink('held', 1);
    const logger = new PayloadLogger({ sinks: [sink], timers });
    logger.log(payloadRecord(0));
    logger.log(payloadRecord(1));
    const first = logger.flush(1000);
    await turn();
    calls[0].settle('sent');
    await turn();
    calls[1].settle('sent');
    assert.equal(await first, true);
    assert.equal(timers.armed(), 0, 'its timer is cleared');

    logger.log(payloadRecord(2));
    const second = logger.flush(1000);
    await turn();
    assert.equal(timers.fire(1000), 1);
    assert.equal(await second, false);
    assert.deepEqual([logger.counts().held.inFlight, logger.counts().held.dropped.shutdown], [1, 0]);
    const third = logger.flush(1000);
    calls[2].settle('sent');
    assert.equal(await third, true);
  });

  it('close() drains within its bound, then drops the rest as shutdown and closes the sinks', async () => {
    const timers = new ManualTimers();
    const { sink, calls, state } = heldSink('held', 2);
    const logger = new PayloadLogger({ sinks: [sink], queue: 5, timers, closeTimeoutMs: 3000 });
    for (let i = 0; i < 5; i++) logger.log(payloadRecord(i));
    await turn();
    assert.equal(calls.length, 2);
    calls[0].settle('sent');
    await turn();
    const closing = logger.close();
    assert.equal(logger.log(payloadRecord(9)), false, 'no more records once closing');
    assert.equal(timers.armed(3000), 1, 'the bound is the configured one');
    assert.equal(logger.close(), closing, 'one shutdown');
    assert.equal(timers.fire(3000), 1);
    assert.equal(await closing, false, 'not drained');
    assert.equal(state.closed, true);
    assert.deepEqual(logger.counts().held, {
      queued: 5,
      sent: 1,
      dropped: { queue_full: 0, sink_error: 0, timeout: 0, shutdown: 5 },
      pending: 0,
      inFlight: 0,
    });
    calls[1].settle('sent');
    await turn();
    assert.equal(logger.counts().held.sent, 1, 'a send that ends after the bound changes nothing');
  });

  it('close() returns true with nothing dropped when the sink keeps up', async () => {
    const timers = new ManualTimers();
    const { sink, calls, state } = heldSink('held', 1);
    const logger = new PayloadLogger({ sinks: [sink], timers });
    logger.log(payloadRecord(0));
    const closing = logger.close(1000);
    await turn();
    calls[0].settle('sent');
    assert.equal(await closing, true);
    assert.equal(state.closed, true);
    assert.equal(timers.armed(), 0);
  });
});

describe('payload log: configuration', () => {
  it('logs nothing (no logger) unless a URL or a file is set', () => {
    assert.equal(createPayloadLogger({}), undefined);
    assert.equal(createPayloadLogger({ url: '', file: '', rate: 1 }), undefined);
  });

  it('builds one sink per setting, with the rate and queue given', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-payload-'));
    try {
      const logger = createPayloadLogger({ url: 'http://127.0.0.1:9/', file: path.join(dir, 'p.jsonl'), rate: 0.2, queue: 7 })!;
      assert.deepEqual(Object.keys(logger.counts()), ['http', 'file']);
      assert.equal(logger.rate, 0.2);
      const only = createPayloadLogger({ file: path.join(dir, 'q.jsonl') })!;
      assert.deepEqual(Object.keys(only.counts()), ['file']);
      assert.equal(only.rate, 0.01, 'the default rate');
      await Promise.all([logger.close(1000), only.close(1000)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad rate, queue or file size', () => {
    assert.throws(() => createPayloadLogger({ file: '/tmp/x', rate: 2 }), /rate/);
    assert.throws(() => createPayloadLogger({ file: '/tmp/x', queue: 0 }), /queue/);
    assert.throws(() => createPayloadLogger({ file: '/tmp/x', fileMaxBytes: 0 }), /maxBytes/);
  });
});

describe('payload log: JSON-lines file sink', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-payload-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const lines = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  const ids = (file: string) => lines(file).map((l) => l.id);
  const lineBytes = Buffer.byteLength(payloadLine(payloadRecord(0)));

  it('rotates by size: path -> path.1 -> path.2, keeping `keep` files', async () => {
    const file = path.join(dir, 'rotate.jsonl');
    const sink = new FileJsonlSink(file, { maxBytes: Math.floor(lineBytes * 2.5), keep: 2 });
    for (let i = 0; i < 9; i++) assert.equal(await sink.send(payloadRecord(i)), 'sent');
    await sink.close();
    assert.deepEqual(ids(file), ['pred-0008']);
    assert.deepEqual(ids(`${file}.1`), ['pred-0006', 'pred-0007']);
    assert.deepEqual(ids(`${file}.2`), ['pred-0004', 'pred-0005']);
    assert.equal(existsSync(`${file}.3`), false);
    for (const f of [file, `${file}.1`, `${file}.2`]) assert.ok(statSync(f).size <= lineBytes * 2.5);
    assert.deepEqual(lines(`${file}.1`)[0], JSON.parse(payloadLine(payloadRecord(6))));
  });

  it('with keep 0, a full file is removed', async () => {
    const file = path.join(dir, 'keep0.jsonl');
    const sink = new FileJsonlSink(file, { maxBytes: lineBytes, keep: 0 });
    for (let i = 0; i < 3; i++) await sink.send(payloadRecord(i));
    await sink.close();
    assert.deepEqual(ids(file), ['pred-0002']);
    assert.equal(existsSync(`${file}.1`), false);
  });

  it('counts the bytes already in the file, and ends a line a crash cut off', async () => {
    const file = path.join(dir, 'resume.jsonl');
    writeFileSync(file, payloadLine(payloadRecord(0)) + '{"cut');
    const sink = new FileJsonlSink(file, { maxBytes: lineBytes * 3 });
    assert.equal(await sink.send(payloadRecord(1)), 'sent');
    assert.equal(await sink.send(payloadRecord(2)), 'sent', 'this one no longer fits: rotated');
    await sink.close();
    assert.deepEqual(readFileSync(`${file}.1`, 'utf8').split('\n').slice(1), ['{"cut', payloadLine(payloadRecord(1)).trim(), '']);
    assert.deepEqual(ids(file), ['pred-0002']);
  });

  it('a write that fails is a sink_error, never a throw, and the next record tries again', async () => {
    const missing = path.join(dir, 'later', 'p.jsonl');
    const sink = new FileJsonlSink(missing);
    assert.equal(await sink.send(payloadRecord(0)), 'sink_error');
    mkdirSync(path.dirname(missing));
    assert.equal(await sink.send(payloadRecord(1)), 'sent');
    await sink.close();
    assert.deepEqual(ids(missing), ['pred-0001']);
    assert.equal(await sink.send(payloadRecord(2)), 'sink_error', 'closed');

    const directory = new FileJsonlSink(dir);
    assert.equal(await directory.send(payloadRecord(0)), 'sink_error');
    await directory.close();
  });

  it('a full disk (/dev/full) is a sink_error', { skip: !existsSync('/dev/full') && 'no /dev/full here' }, async () => {
    const sink = new FileJsonlSink('/dev/full', { maxBytes: 10 });
    assert.equal(await sink.send(payloadRecord(0)), 'sink_error');
    assert.equal(await sink.send(payloadRecord(1)), 'sink_error');
    await sink.close();
  });

  it('through the logger: lines in the order logged, drops counted', async () => {
    const file = path.join(dir, 'logger.jsonl');
    const logger = new PayloadLogger({ sinks: [new FileJsonlSink(file)], queue: 4 });
    const outcomes: PayloadOutcome[] = [];
    logger.on('settled', (s: Settled) => outcomes.push(s.outcome));
    for (let i = 0; i < 6; i++) logger.log(payloadRecord(i));
    assert.equal(await logger.close(60_000), true);
    assert.deepEqual(ids(file), ['pred-0000', 'pred-0001', 'pred-0002', 'pred-0003']);
    assert.deepEqual(outcomes, ['queue_full', 'queue_full', 'sent', 'sent', 'sent', 'sent']);
    assert.equal(logger.counts().file.sent, 4);
  });
});
