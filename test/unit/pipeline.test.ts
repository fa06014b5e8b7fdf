/** The request pipeline on its own: admission, deadlines, timing by an injected clock, metrics and the log line. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Admission } from '../../src/core/admission';
import { ServiceError } from '../../src/core/errors';
import { RequestPipeline } from '../../src/pipeline/pipeline';
import { bareMetrics } from '../helpers';
import { LogCapture } from '../support/wait';

function setup() {
  const metrics = bareMetrics();
  const log = new LogCapture();
  const admission = new Admission();
  let now = 1000;
  let wall = 5_000_000;
  const pipeline = new RequestPipeline({
    admission,
    metrics,
    log: pino({ level: 'info' }, log.stream),
    now: () => now,
    wallClock: () => wall,
  });
  const counted = async () => (await metrics.requests.get()).values.map((v) => ({ ...v.labels, value: v.value }));
  const durations = async () => (await metrics.requestDuration.get()).values.filter((v) => v.metricName?.endsWith('_sum'));
  return {
    pipeline,
    admission,
    log,
    counted,
    durations,
    advance: (ms: number) => (now += ms),
    setWall: (ms: number) => (wall = ms),
  };
}

describe('request pipeline', () => {
  it('counts, times and logs a served call with its model and arm', async () => {
    const t = setup();
    const result = await t.pipeline.run(
      { transport: 'http', endpoint: 'classify', requestId: 'req-1' },
      async () => {
        t.advance(25);
        return { model: 'baseline', arm: 'control' };
      },
      (r) => r,
    );
    assert.deepEqual(result, { model: 'baseline', arm: 'control' });
    assert.deepEqual(await t.counted(), [
      { transport: 'http', endpoint: 'classify', model: 'baseline', arm: 'control', code: 'OK', value: 1 },
    ]);
    const [sum] = await t.durations();
    assert.equal(sum.value, 0.025, 'the injected clock times the call');
    const line = await t.log.waitFor((l) => l.msg === 'request', { from: 0 });
    assert.equal(line.reqId, 'req-1');
    assert.equal(line.ms, 25);
    assert.equal(line.code, 'OK');
    assert.equal(line.model, 'baseline');
  });

  it('normalises anything thrown into a ServiceError, logs INTERNAL with its stack and counts the code', async () => {
    const t = setup();
    await assert.rejects(
      t.pipeline.run({ transport: 'grpc', endpoint: 'infer' }, () => {
        throw new TypeError('a bug');
      }),
      (e: unknown) => e instanceof ServiceError && e.code === 'INTERNAL' && e.message === 'internal error',
    );
    await assert.rejects(
      t.pipeline.run({ transport: 'grpc', endpoint: 'infer' }, () => {
        throw new ServiceError('NOT_FOUND', 'no such model');
      }),
      (e: unknown) => e instanceof ServiceError && e.code === 'NOT_FOUND',
    );
    const codes = (await t.counted()).map((c) => `${c.code}:${c.value}`).sort();
    assert.deepEqual(codes, ['INTERNAL:1', 'NOT_FOUND:1']);
    const internal = await t.log.waitFor((l) => l.code === 'INTERNAL', { from: 0 });
    assert.equal(internal.msg, 'request failed');
    assert.match(String(internal.err), /TypeError: a bug/);
    const notFound = await t.log.waitFor((l) => l.code === 'NOT_FOUND', { from: 0 });
    assert.equal(notFound.msg, 'request');
    assert.equal(notFound.err, undefined);
  });

  it('refuses work while draining, and counts and logs the refusal', async () => {
    const t = setup();
    t.admission.startDraining();
    let ran = false;
    await assert.rejects(
      t.pipeline.run({ transport: 'http', endpoint: 'classify' }, () => {
        ran = true;
      }),
      (e: unknown) => e instanceof ServiceError && e.code === 'UNAVAILABLE' && e.retryAfterSeconds === 1,
    );
    assert.equal(ran, false);
    assert.equal((await t.counted())[0].code, 'UNAVAILABLE');
    assert.equal(t.admission.drainStats().refused, 1);
  });

  it('holds admission until the call finishes, so a drain waits for it', async () => {
    const t = setup();
    let finishWork: () => void = () => undefined;
    const running = t.pipeline.run({ transport: 'grpc', endpoint: 'classify_stream' }, () => new Promise<void>((r) => (finishWork = r)));
    assert.equal(t.admission.active, 1);
    t.admission.startDraining();
    const idle = t.admission.whenIdle(60_000);
    finishWork();
    await running;
    assert.equal(await idle, true);
    assert.equal(t.admission.active, 0);
  });

  it('does no work once the deadline has passed', async () => {
    const t = setup();
    t.setWall(10_000);
    let ran = false;
    await assert.rejects(
      t.pipeline.run({ transport: 'grpc', endpoint: 'classify', deadline: 10_000 }, () => {
        ran = true;
      }),
      (e: unknown) => e instanceof ServiceError && e.code === 'DEADLINE_EXCEEDED',
    );
    assert.equal(ran, false);
    await t.pipeline.run({ transport: 'grpc', endpoint: 'classify', deadline: 10_001 }, () => undefined);
    await t.pipeline.run({ transport: 'grpc', endpoint: 'classify', deadline: Infinity }, () => undefined);
    assert.deepEqual((await t.counted()).map((c) => `${c.code}:${c.value}`).sort(), ['DEADLINE_EXCEEDED:1', 'OK:2']);
  });

  it('logs probes and metadata but neither admits nor counts them', async () => {
    const t = setup();
    t.admission.startDraining();
    await t.pipeline.run({ transport: 'http', endpoint: 'health' }, () => 'ok');
    assert.deepEqual(await t.counted(), []);
    const line = await t.log.waitFor((l) => l.endpoint === 'health', { from: 0 });
    assert.equal(line.code, 'OK');
  });

  it('finishes a call once, however often the transport reports its end', async () => {
    const t = setup();
    const call = t.pipeline.begin({ transport: 'http', endpoint: 'feedback' });
    call.serve({ model: 'baseline', arm: 'b' });
    call.finish();
    const again = call.finish(new Error('close after finish'));
    assert.equal(again?.code, 'INTERNAL', 'the error is still normalised for the caller');
    assert.deepEqual(await t.counted(), [{ transport: 'http', endpoint: 'feedback', model: 'baseline', arm: 'b', code: 'OK', value: 1 }]);
    assert.equal(t.admission.active, 0);
  });
});
