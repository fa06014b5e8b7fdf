/**
 * Driving the service as the rollout would be driven: classify with routing
 * keys over HTTP and gRPC, send ground truth back, and read the A/B report,
 * observed and estimated accuracy, and drift from /v1/ab.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { AbRouter, parseRoutingConfig } from '../../src/routing/router';
import { call, clients, type Clients } from '../grpc-clients';
import { fixtureBytes, fixtureImages, startService, tempModelDir } from '../helpers';
import { nextEvent } from '../support/wait';

const TOKEN = 'ab-test-admin-token-000000';
const CONFIG = {
  experiment: 'ab-integration',
  control: 'control',
  arms: [
    { name: 'control', model: 'baseline', weight: 1 },
    { name: 'candidate', model: 'baseline', weight: 1 },
  ],
};

describe('A/B evidence from live traffic', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  let api: ReturnType<typeof request>;
  let c: Clients;
  const fixtures = fixtureImages();

  before(async () => {
    service = await startService({ ADMIN_TOKEN: TOKEN });
    api = request(`http://127.0.0.1:${service.port}`);
    c = clients(service.grpcPort);
    await api.put('/v1/admin/routing').set('Authorization', `Bearer ${TOKEN}`).send(CONFIG).expect(200);
  });
  after(async () => {
    c.close();
    await service.stop();
  });

  it('counts assignments, feedback, accuracy and drift from HTTP and gRPC traffic', async () => {
    const empty = (await api.get('/v1/ab').expect(200)).body;
    assert.equal(empty.experiment.experiment, 'ab-integration');
    assert.deepEqual(
      empty.experiment.arms.map((a: { assigned: number }) => a.assigned),
      [0, 0],
    );

    const router = new AbRouter(parseRoutingConfig(CONFIG));
    const expectedArms = new Map<string, number>();
    let right = 0;
    for (const [i, f] of fixtures.entries()) {
      const key = `customer-${i}`;
      let predictionId: string;
      let arm: string;
      let labelIndex: number;
      if (i % 2 === 0) {
        const res = await api.post('/v1/classify').set('X-Routing-Key', key).attach('image', fixtureBytes(f.file), f.file).expect(200);
        ({ predictionId, arm, labelIndex } = res.body);
        const fb = await api.post('/v1/feedback').send({ predictionId, label: f.label }).expect(200);
        assert.equal(fb.body.correct, labelIndex === f.labelIndex);
      } else {
        const res = await call(c.product, 'Classify', { image: { encoded: fixtureBytes(f.file) }, routing_key: key });
        ({ prediction_id: predictionId, arm, label_index: labelIndex } = res);
        await call(c.product, 'SendFeedback', { prediction_id: predictionId, label_index: f.labelIndex });
      }
      assert.equal(arm, router.select({ routingKey: key }).arm);
      expectedArms.set(arm, (expectedArms.get(arm) ?? 0) + 1);
      if (labelIndex === f.labelIndex) right++;
    }
    // An explicit model choice is served but stays out of the experiment.
    const explicit = await api
      .post('/v1/classify')
      .field('model', 'baseline')
      .attach('image', fixtureBytes(fixtures[0].file), 'x.png')
      .expect(200);
    await api.post('/v1/feedback').send({ predictionId: explicit.body.predictionId, label: fixtures[0].label }).expect(200);

    const report = (await api.get('/v1/ab').expect(200)).body;
    const arms = report.experiment.arms as { name: string; assigned: number; labelled: number; correct: number; accuracy: number }[];
    for (const a of arms) {
      assert.equal(a.assigned, expectedArms.get(a.name) ?? 0, a.name);
      assert.equal(a.labelled, a.assigned);
    }
    assert.equal(
      arms.reduce((s, a) => s + a.correct, 0),
      right,
    );
    assert.equal(report.experiment.sampleRatio.mismatch, false);
    assert.equal(report.experiment.comparisons[0].verdict, 'not-decided');

    const acc1h = report.accuracy['1h'] as {
      model: string;
      arm: string;
      figures: { labelled: number; correct: number; observed: number; expected: number };
    }[];
    const byArm = Object.fromEntries(acc1h.map((a) => [a.arm, a.figures]));
    assert.equal(byArm.explicit.labelled, 1);
    assert.equal(byArm.control.labelled + byArm.candidate.labelled, fixtures.length);
    assert.ok(byArm.control.expected > 0.5 && byArm.control.expected <= 1);

    const drift = report.drift['1h'] as {
      model: string;
      report: { samples: number; estimatedAccuracy: number; drift: boolean; reasons: string[] };
    }[];
    assert.equal(drift.length, 1);
    assert.equal(drift[0].model, 'baseline');
    assert.equal(drift[0].report.samples, fixtures.length + 1);
    assert.ok(drift[0].report.estimatedAccuracy > 0.8);
    assert.match(drift[0].report.reasons[0], /drift is judged from 500/);

    // The same evidence in Prometheus's text format, from the metrics port.
    const text = (await request(`http://127.0.0.1:${service.metricsPort}`).get('/metrics').expect(200)).text;
    const value = (name: string, labels: Record<string, string>) => {
      const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
      const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
      assert.ok(line, `${name} ${JSON.stringify(labels)} in /metrics`);
      return Number(line!.split(' ').pop());
    };
    const half = fixtures.length / 2;
    const sumOver = (name: string, labels: Record<string, string>) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
        .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
    assert.equal(sumOver('classifier_requests_total', { transport: 'http', code: 'OK' }) >= half * 2 + 2, true);
    assert.equal(sumOver('classifier_requests_total', { transport: 'grpc', code: 'OK' }), half * 2);
    assert.equal(sumOver('classifier_feedback_total', { model: 'baseline' }), fixtures.length + 1);
    assert.equal(value('classifier_ab_arm_requests', { arm: 'control' }), arms.find((a) => a.name === 'control')!.assigned);
    assert.equal(value('classifier_ab_arm_labelled', { arm: 'candidate' }), arms.find((a) => a.name === 'candidate')!.labelled);
    assert.equal(value('classifier_accuracy_observed_ratio', { arm: 'control', window: '1h' }), byArm.control.observed);
    assert.equal(value('classifier_prediction_window_samples', { model: 'baseline', window: '24h' }), fixtures.length + 1);
    assert.equal(value('classifier_arm_weight_ratio', { arm: 'candidate' }), 0.5);
    assert.equal(value('classifier_ab_verdict', { arm: 'candidate' }), 0);
    assert.equal(value('classifier_model_info', { model: 'baseline', version: '1' }), 1);
    assert.equal(sumOver('classifier_confidence_count', { model: 'baseline' }), fixtures.length + 1);
    assert.ok(text.includes('classifier_request_duration_seconds_bucket{le="0.0005"'));
    assert.equal(value('classifier_reference_confidence_cdf', { model: 'baseline', bound: '1' }), 1);
    const median = value('classifier_reference_confidence_cdf', { model: 'baseline', bound: '0.995' });
    assert.ok(median > 0.4 && median < 0.6, `reference CDF at 0.995: ${median}`);
    assert.ok(value('classifier_reference_class_share', { model: 'baseline', label: 'Bag' }) > 0.09);

    // Repeated feedback is answered but not counted again.
    const again = await api.post('/v1/feedback').send({ predictionId: explicit.body.predictionId, label: 0 }).expect(200);
    assert.equal(again.body.accepted, false);
    const after = (await api.get('/v1/ab').expect(200)).body;
    assert.equal(after.accuracy['1h'].find((a: { arm: string }) => a.arm === 'explicit').figures.labelled, 1);
    const rejected = await api.post('/v1/feedback').send({ predictionId: 'not-a-receipt', label: 0 });
    assert.equal(rejected.status, 400);
    const text2 = (await request(`http://127.0.0.1:${service.metricsPort}`).get('/metrics').expect(200)).text;
    assert.ok(text2.includes('classifier_feedback_rejected_total{outcome="malformed"} 1'));
    assert.ok(text2.includes('outcome="duplicate"} 1'));
  });
});

describe('shadow traffic', () => {
  it('mirrors served images to the shadow model after the answer and measures agreement', async () => {
    // A second model with the baseline's weights under another name: it must agree every time.
    const dir = await tempModelDir();
    await cp(path.join(dir, 'baseline'), path.join(dir, 'twin'), { recursive: true });
    const manifestPath = path.join(dir, 'twin', '1', 'manifest.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    await writeFile(manifestPath, JSON.stringify({ ...manifest, name: 'twin' }));
    const service = await startService({ MODEL_DIR: dir, ADMIN_TOKEN: TOKEN });
    try {
      const api = request(`http://127.0.0.1:${service.port}`);
      await api
        .put('/v1/admin/routing')
        .set('Authorization', `Bearer ${TOKEN}`)
        .send({ experiment: 'shadowed', arms: [{ name: 'all', model: 'baseline', weight: 1 }], shadow: { model: 'twin', fraction: 1 } })
        .expect(200);
      // A mirrored call runs after its answer and ends by counting its images (agree, disagree, dropped or
      // error) in classifier_shadow_predictions_total: that count is the event each request waits for.
      const counter = service.metrics.shadowPredictions;
      const inc = counter.inc.bind(counter);
      const counted = new EventEmitter();
      let mirrored = 0;
      counter.inc = ((labels: Record<string, string>, value?: number) => {
        inc(labels, value);
        mirrored += value ?? 1;
        counted.emit('counted', mirrored);
      }) as typeof counter.inc;
      const fixtures = fixtureImages().slice(0, 20);
      try {
        for (const [i, f] of fixtures.entries()) {
          const shadowed = nextEvent<number>(counted, 'counted', (n) => n >= i + 1, `the shadow call for ${f.file}`);
          const res = await api.post('/v1/classify').attach('image', fixtureBytes(f.file), f.file).expect(200);
          assert.equal(res.body.model, 'baseline', 'the shadow never answers');
          await shadowed; // one shadow call at a time: none is dropped for piling up, however slow the machine
        }
      } finally {
        counter.inc = inc as typeof counter.inc;
      }
      const shadow = (await api.get('/v1/ab').expect(200)).body.shadow['1h'];
      assert.deepEqual(shadow, [{ served: 'baseline', shadow: 'twin', compared: fixtures.length, agreement: 1 }]);
      const text = (await request(`http://127.0.0.1:${service.metricsPort}`).get('/metrics').expect(200)).text;
      assert.ok(
        text.includes(`classifier_shadow_predictions_total{model="twin",outcome="agree"} ${fixtures.length}`),
        text
          .split('\n')
          .filter((l) => l.includes('shadow'))
          .join('\n'),
      );
      assert.ok(text.includes('classifier_shadow_agreement_ratio{model="twin",window="1h"} 1'));
    } finally {
      await service.stop();
    }
  });
});
