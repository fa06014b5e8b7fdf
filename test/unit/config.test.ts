import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config';

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
    assert.throws(() => loadConfig({ MAX_BATCH_IMAGES: '0' }), /MAX_BATCH_IMAGES/);
  });
});
