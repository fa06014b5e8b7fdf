import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, precisionFor, RENAMED } from '../../src/config';

describe('config', () => {
  it('has the contract defaults and is frozen', () => {
    const c = loadConfig({});
    assert.equal(c.httpPort, 8080);
    assert.equal(c.grpcPort, 50051);
    assert.equal(c.metricsPort, 9464);
    assert.ok(c.modelDir.endsWith('models'));
    assert.equal(c.runtime, 'onnx');
    assert.ok(Object.isFrozen(c));
  });

  it('refuses bad values naming the variable', () => {
    assert.throws(
      () => loadConfig({ HTTP_PORT: 'eighty' }),
      (e: Error) => e instanceof ConfigError && /HTTP_PORT/.test(e.message),
    );
    assert.throws(() => loadConfig({ RUNTIME: 'torch' }), /RUNTIME=torch must be one of onnx, tfjs/);
    assert.throws(() => loadConfig({ ADMIN_TOKEN: 'short' }), /ADMIN_TOKEN/);
    assert.throws(() => loadConfig({ CLASSIFY_MAX_IMAGES: '0' }), /CLASSIFY_MAX_IMAGES=0/);
    // A bad value under an old name is reported under the name that was set.
    assert.throws(() => loadConfig({ MAX_BATCH_IMAGES: '0' }), /MAX_BATCH_IMAGES=0/);
  });

  it('serves the try-it page unless TRY_IT_PAGE=off, and allows no cross-origin caller unless CORS_ORIGINS lists it', () => {
    const d = loadConfig({});
    assert.equal(d.tryItPage, true);
    assert.deepEqual(d.corsOrigins, []);
    assert.equal(loadConfig({ TRY_IT_PAGE: 'off' }).tryItPage, false);
    assert.throws(() => loadConfig({ TRY_IT_PAGE: 'no' }), /TRY_IT_PAGE=no must be one of on, off/);
    assert.deepEqual(loadConfig({ CORS_ORIGINS: 'https://shop.example.com, http://localhost:3000' }).corsOrigins, [
      'https://shop.example.com',
      'http://localhost:3000',
    ]);
    assert.deepEqual(loadConfig({ CORS_ORIGINS: '*' }).corsOrigins, ['*']);
    for (const bad of [
      'https://shop.example.com/',
      'shop.example.com',
      'ftp://x.example',
      'https://x.example/path',
      '*,https://a.example',
    ]) {
      assert.throws(() => loadConfig({ CORS_ORIGINS: bad }), /CORS_ORIGINS/, bad);
    }
  });

  it('reads the renamed variables under their new names, and the old ones with a warning', () => {
    const quiet: string[] = [];
    const c = loadConfig(
      { CLASSIFY_MAX_IMAGES: '16', BATCHER_MAX_SIZE: '8', BATCHER_MAX_DELAY_MS: '2', BATCHER_MAX_QUEUE: '99', BATCHER_CONCURRENCY: '3' },
      (m) => quiet.push(m),
    );
    assert.deepEqual(
      [c.classifyMaxImages, c.batcherMaxSize, c.batcherMaxDelayMs, c.batcherMaxQueue, c.batcherConcurrency],
      [16, 8, 2, 99, 3],
    );
    assert.deepEqual(quiet, []);

    const warnings: string[] = [];
    const old = loadConfig(
      { MAX_BATCH_IMAGES: '16', BATCH_MAX_IMAGES: '8', BATCH_MAX_DELAY_MS: '2', QUEUE_MAX_IMAGES: '99', BATCH_CONCURRENCY: '3' },
      (m) => warnings.push(m),
    );
    assert.deepEqual(
      [old.classifyMaxImages, old.batcherMaxSize, old.batcherMaxDelayMs, old.batcherMaxQueue, old.batcherConcurrency],
      [16, 8, 2, 99, 3],
    );
    assert.equal(warnings.length, Object.keys(RENAMED).length);
    for (const [name, was] of Object.entries(RENAMED))
      assert.ok(
        warnings.some((w) => w.includes(was) && w.includes(name)),
        `${was} -> ${name}`,
      );

    // Both set: the new name wins, and the old one still warns.
    const both: string[] = [];
    assert.equal(loadConfig({ CLASSIFY_MAX_IMAGES: '5', MAX_BATCH_IMAGES: '7' }, (m) => both.push(m)).classifyMaxImages, 5);
    assert.equal(both.length, 1);
  });

  it('serves ONNX on an inference thread in float32 unless INFERENCE_THREAD and MODEL_PRECISION say otherwise', () => {
    const d = loadConfig({});
    assert.equal(d.inferenceThread, 'worker');
    assert.equal(precisionFor(d.modelPrecision, 'baseline'), 'float32');
    assert.equal(loadConfig({ INFERENCE_THREAD: 'caller' }).inferenceThread, 'caller');
    assert.throws(() => loadConfig({ INFERENCE_THREAD: 'gpu' }), /INFERENCE_THREAD=gpu must be one of worker, caller/);

    const all = loadConfig({ MODEL_PRECISION: 'int8' }).modelPrecision;
    assert.equal(precisionFor(all, 'baseline'), 'int8');
    assert.equal(precisionFor(all, 'dendritic'), 'int8');
    const mixed = loadConfig({ MODEL_PRECISION: ' int8 , dendritic=float32 ' }).modelPrecision;
    assert.equal(precisionFor(mixed, 'baseline'), 'int8');
    assert.equal(precisionFor(mixed, 'dendritic'), 'float32');
    const one = loadConfig({ MODEL_PRECISION: 'baseline=int8' }).modelPrecision;
    assert.equal(precisionFor(one, 'baseline'), 'int8');
    assert.equal(precisionFor(one, 'dendritic'), 'float32');
    assert.equal(precisionFor(one, 'toString'), 'float32');
    for (const [bad, message] of [
      ['int4', /MODEL_PRECISION entry "int4" must be float32 or int8/],
      ['baseline=fp16', /MODEL_PRECISION entry "baseline=fp16"/],
      ['int8,float32', /gives the default precision twice/],
      ['baseline=int8,baseline=float32', /names baseline twice/],
      ['bad name=int8', /"bad name" is not a model name/],
      ['int8,', /MODEL_PRECISION entry ""/],
    ] as const) {
      assert.throws(
        () => loadConfig({ MODEL_PRECISION: bad }),
        (e: Error) => e instanceof ConfigError && message.test(e.message),
        bad,
      );
    }
  });
});
