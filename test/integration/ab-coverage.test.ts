/**
 * Traffic outside the experiment (keys beyond its coverage) is served by the
 * control arm's model but never counted as the control arm: it answers arm
 * "default" in the body and X-Model-Arm, in the request, prediction and
 * feedback metrics and in the accuracy report, and the A/B report counts
 * only the experiment's own traffic.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { AbRouter, parseRoutingConfig } from '../../src/routing/router';
import { fixtureBytes, fixtureImages, startService } from '../helpers';

const TOKEN = 'ab-coverage-admin-token-00';
const CONFIG = {
  experiment: 'coverage-20',
  control: 'control',
  coverage: 0.2,
  arms: [
    { name: 'control', model: 'baseline', weight: 1 },
    { name: 'candidate', model: 'dendritic', weight: 1 },
  ],
};

describe('traffic outside the experiment', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  let api: ReturnType<typeof request>;

  before(async () => {
    service = await startService({ ADMIN_TOKEN: TOKEN });
    api = request(`http://127.0.0.1:${service.port}`);
    await api.put('/v1/admin/routing').set('Authorization', `Bearer ${TOKEN}`).send(CONFIG).expect(200);
  });
  after(async () => {
    await service.stop();
  });

  it('keeps its own arm label and stays out of the control population', async () => {
    const router = new AbRouter(parseRoutingConfig(CONFIG));
    const fixtures = fixtureImages().slice(0, 120);
    const sent = new Map<string, number>();
    for (const [i, f] of fixtures.entries()) {
      const key = `shopper-${i}`;
      const res = await api.post('/v1/classify').set('X-Routing-Key', key).attach('image', fixtureBytes(f.file), f.file).expect(200);
      const expected = router.select({ routingKey: key });
      assert.equal(res.body.arm, expected.experiment === undefined ? 'default' : expected.arm, key);
      assert.equal(res.headers['x-model-arm'], res.body.arm);
      if (res.body.arm === 'default') assert.equal(res.body.model, 'baseline', 'served by the control arm model');
      sent.set(res.body.arm, (sent.get(res.body.arm) ?? 0) + 1);
      await api.post('/v1/feedback').send({ predictionId: res.body.predictionId, label: f.label }).expect(200);
    }
    const outside = sent.get('default') ?? 0;
    const control = sent.get('control') ?? 0;
    assert.ok(outside > 60 && control > 0, `both populations present: ${JSON.stringify([...sent])}`);

    const report = (await api.get('/v1/ab').expect(200)).body;
    const arms = Object.fromEntries(report.experiment.arms.map((a: { name: string }) => [a.name, a]));
    assert.equal(arms.control.assigned, control, 'the A/B report counts only the experiment control');
    assert.equal(arms.control.labelled, control);
    assert.equal(arms.candidate.assigned, sent.get('candidate') ?? 0);
    const accuracy = Object.fromEntries(report.accuracy['1h'].map((a: { arm: string; figures: unknown }) => [a.arm, a.figures]));
    assert.equal(accuracy.default.labelled, outside);
    assert.equal(accuracy.control.labelled, control);

    const count = async (family: 'requests' | 'predictions' | 'feedback', arm: string) =>
      (await service.metrics[family].get()).values.filter((v) => v.labels.arm === arm).reduce((s, v) => s + v.value, 0);
    assert.equal(await count('predictions', 'default'), outside);
    assert.equal(await count('predictions', 'control'), control);
    // Requests: each classification and its feedback, under the arm of the prediction.
    assert.equal(await count('requests', 'default'), 2 * outside);
    assert.equal(await count('requests', 'control'), 2 * control);
    assert.equal(await count('feedback', 'control'), control);
    assert.equal(await count('feedback', 'default'), outside);
  });
});
