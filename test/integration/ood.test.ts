/**
 * Out-of-distribution scores, abstention and payload logging on every
 * transport, over real sockets: a product image is answered and not
 * flagged, a noise image is flagged; `abstain` (HTTP field and query, gRPC
 * enum, OIP parameter) and the server's ABSTAIN answer without a label;
 * abstentions are counted apart in the metrics and the A/B report; the
 * payload log delivers CloudEvents to a real HTTP receiver, and a receiver
 * that never answers slows no request (its drops are counted).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { call, clients, type Clients } from '../grpc-clients';
import { fixtureBytes, fixtureImages, startService } from '../helpers';
import { nextEvent } from '../support/wait';

type Started = Awaited<ReturnType<typeof startService>>;

/** Pixels no garment photo gives: uniform noise, deterministic. */
function noise(seed = 7): number[] {
  let x = seed;
  return Array.from({ length: 784 }, () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % 256;
  });
}

const fixtures = fixtureImages();
const product = fixtureBytes(fixtures[0].file);

async function counter(service: Started, name: string, labels: Record<string, string>): Promise<number> {
  const metric = service.metrics.registry.getSingleMetric(name)!;
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((a, v) => a + v.value, 0);
}

describe('out-of-distribution scores and abstention', () => {
  let service: Started;
  let api: ReturnType<typeof request>;
  let c: Clients;

  before(async () => {
    service = await startService({ ABSTAIN: 'off', ABSTAIN_MIN_CONFIDENCE: '0.9' });
    api = request(`http://127.0.0.1:${service.port}`);
    c = clients(service.grpcPort);
  });
  after(async () => {
    c.close();
    await service.stop();
  });

  it('HTTP: a product photo is answered and not flagged; a noise image is answered but flagged', async () => {
    const ok = (await api.post('/v1/classify').attach('image', product, 'item.png').expect(200)).body;
    assert.equal(ok.label, fixtures[0].label);
    assert.equal(ok.ood.flagged, false);
    assert.ok(ok.ood.score < ok.ood.threshold);
    const odd = (await api.post('/v1/classify').send({ pixels: noise() }).expect(200)).body;
    assert.equal(odd.ood.flagged, true);
    assert.ok(odd.ood.score > odd.ood.threshold);
    assert.equal(typeof odd.label, 'string', 'ABSTAIN=off: still answered');
    assert.equal(odd.abstained, undefined);
  });

  it('HTTP: abstain (JSON, form field, query) answers a flagged image without a label, with the reason; false overrides', async () => {
    const json = (await api.post('/v1/classify').send({ pixels: noise(), abstain: true }).expect(200)).body;
    assert.equal(json.abstained, 'out-of-distribution');
    assert.equal(json.label, undefined);
    assert.equal(json.labelIndex, undefined);
    assert.ok(json.top.length > 0 && json.confidence > 0, 'scores and top-k kept');
    const pngNoise = (
      await api
        .post('/v1/classify?abstain=true')
        .send({ pixels: noise(3) })
        .expect(200)
    ).body;
    assert.equal(pngNoise.abstained, 'out-of-distribution');
    const form = (await api.post('/v1/classify').attach('image', product, 'item.png').field('abstain', 'true').expect(200)).body;
    assert.equal(form.abstained, undefined, 'a confident in-distribution answer is given');
    assert.equal(form.label, fixtures[0].label);
    const bad = await api.post('/v1/classify').send({ pixels: noise(), abstain: 'yes' }).expect(400);
    assert.match(bad.body.error.message, /abstain must be a JSON boolean/);
  });

  it('HTTP batch: each item carries its own verdict', async () => {
    const res = (
      await api
        .post('/v1/classify/batch')
        .send({ images: [{ image: product.toString('base64') }, { pixels: noise() }], abstain: true })
        .expect(200)
    ).body;
    assert.equal(res.results[0].label, fixtures[0].label);
    assert.equal(res.results[1].abstained, 'out-of-distribution');
    assert.equal(res.results[1].label, undefined);
  });

  it('gRPC: ood fields; ABSTAIN_ON leaves label and label_index unset; ABSTAIN_OFF answers', async () => {
    const flagged = await call(c.product, 'Classify', { image: { pixels: { values: noise() } }, abstain: 'ABSTAIN_ON' });
    assert.equal(flagged.abstained, 'out-of-distribution');
    assert.equal(flagged.label, '');
    assert.equal(flagged.label_index, undefined, 'label_index is optional and left unset');
    assert.equal(flagged.ood.flagged, true);
    const fb = await call(c.product, 'SendFeedback', { prediction_id: flagged.prediction_id, label: 'Bag' });
    assert.equal(fb.abstained, true, 'gRPC feedback says the prediction abstained, as HTTP does');
    const answered = await call(c.product, 'Classify', { image: { pixels: { values: noise() } }, abstain: 'ABSTAIN_OFF' });
    assert.equal(answered.abstained, '');
    assert.equal(typeof answered.label_index, 'number');
    assert.equal(answered.ood.flagged, true);
    const calm = await call(c.product, 'Classify', { image: { encoded: product } });
    assert.equal(calm.ood.flagged, false);
    assert.equal(calm.label, fixtures[0].label);
  });

  it('OIP REST and gRPC: ood_score and abstained outputs, the abstain parameter, and the threshold in the model metadata', async () => {
    const meta = (await api.get('/v2/models/baseline').expect(200)).body;
    assert.equal(meta.parameters.ood_score, 'sumz(msp,pixClass)');
    assert.ok(meta.parameters.ood_threshold > 0);
    assert.ok(meta.outputs.some((o: { name: string }) => o.name === 'ood_score'));
    const rest = (
      await api
        .post('/v2/models/baseline/infer')
        .send({ inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [1, 28, 28], data: noise() }], parameters: { abstain: true } })
        .expect(200)
    ).body;
    const out = (name: string) => rest.outputs.find((o: { name: string }) => o.name === name).data;
    assert.ok(out('ood_score')[0] > meta.parameters.ood_threshold);
    assert.deepEqual(out('abstained'), ['out-of-distribution']);
    assert.deepEqual(out('label'), ['']);
    assert.deepEqual(out('label_index'), [-1]);

    const grpcMeta = await call(c.oip, 'ModelMetadata', { name: 'baseline' });
    assert.ok(grpcMeta.parameters.ood_threshold.double_param > 0);
    const g = await call(c.oip, 'ModelInfer', {
      model_name: 'baseline',
      inputs: [{ name: 'pixels', datatype: 'UINT8', shape: [1, 28, 28], contents: { uint_contents: noise() } }],
      parameters: { abstain: { bool_param: true } },
    });
    const gout = (name: string) => g.outputs.find((o: { name: string }) => o.name === name).contents;
    assert.ok(gout('ood_score').fp32_contents[0] > meta.parameters.ood_threshold);
    assert.deepEqual(gout('abstained').bytes_contents.map(String), ['out-of-distribution']);
  });

  it('counts flags and abstentions in the metrics and the A/B report', async () => {
    const before = {
      flagged: await counter(service, 'classifier_ood_flagged_total', { model: 'baseline' }),
      abstained: await counter(service, 'classifier_abstentions_total', { model: 'baseline', reason: 'out-of-distribution' }),
      predictions: await counter(service, 'classifier_predictions_total', { model: 'baseline' }),
    };
    await api
      .post('/v1/classify')
      .send({ pixels: noise(11), abstain: true })
      .expect(200);
    assert.equal(await counter(service, 'classifier_ood_flagged_total', { model: 'baseline' }), before.flagged + 1);
    assert.equal(
      await counter(service, 'classifier_abstentions_total', { model: 'baseline', reason: 'out-of-distribution' }),
      before.abstained + 1,
    );
    // Still a prediction (the class mix describes every input), not an answer: no accuracy from it.
    assert.equal(await counter(service, 'classifier_predictions_total', { model: 'baseline' }), before.predictions + 1);
    const report = (await api.get('/v1/ab').expect(200)).body;
    const mine = report.abstentions['1h'].abstained.find((a: { model: string; reason: string }) => a.model === 'baseline');
    assert.ok(mine.count >= 1);
    const expected = await counter(service, 'classifier_ood_expected_flag_ratio', { model: 'baseline' });
    assert.equal(expected, 0.05);
  });

  it('feedback on an abstained prediction is accepted and counted apart from accuracy', async () => {
    const labelledBefore = async () =>
      ((await api.get('/v1/ab').expect(200)).body.abstentions['1h'].feedback as { model: string; labelled: number }[])
        .filter((f) => f.model === 'baseline')
        .reduce((a, f) => a + f.labelled, 0);
    const before = {
      counted: await counter(service, 'classifier_feedback_total', { model: 'baseline', outcome: 'abstained' }),
      labelled: await labelledBefore(),
    };
    const res = (
      await api
        .post('/v1/classify')
        .send({ pixels: noise(13), abstain: true })
        .expect(200)
    ).body;
    const fb = (await api.post('/v1/feedback').send({ predictionId: res.predictionId, label: 'Bag' }).expect(200)).body;
    assert.equal(fb.abstained, true);
    assert.equal(await counter(service, 'classifier_feedback_total', { model: 'baseline', outcome: 'abstained' }), before.counted + 1);
    const report = (await api.get('/v1/ab').expect(200)).body;
    const acc = report.accuracy['1h'].find((a: { model: string }) => a.model === 'baseline');
    assert.equal(acc, undefined, 'no accuracy figure from an abstention');
    assert.equal(await labelledBefore(), before.labelled + 1);
  });
});

describe('ABSTAIN=ood+confidence as the server default', () => {
  let service: Started;
  before(async () => {
    service = await startService({ ABSTAIN: 'ood+confidence', ABSTAIN_MIN_CONFIDENCE: '0.9999' });
  });
  after(async () => {
    await service.stop();
  });

  it('abstains on low confidence when the request does not choose, and answers when it says abstain=false', async () => {
    const api = request(`http://127.0.0.1:${service.port}`);
    const low = (await api.post('/v1/classify').attach('image', product, 'item.png').expect(200)).body;
    assert.equal(low.ood.flagged, false);
    assert.ok(low.confidence < 0.9999);
    assert.equal(low.abstained, 'low-confidence');
    assert.equal(low.label, undefined);
    const forced = (await api.post('/v1/classify?abstain=false').attach('image', product, 'item.png').expect(200)).body;
    assert.equal(forced.label, fixtures[0].label);
    assert.equal(forced.abstained, undefined);
  });
});

describe('payload logging', () => {
  it('delivers a flagged prediction to a real CloudEvents receiver: request and response events sharing the prediction id', async () => {
    const received: { headers: http.IncomingHttpHeaders; body: any }[] = [];
    const sink = http.createServer((req, res) => {
      let data = '';
      req.on('data', (chunk) => (data += chunk));
      req.on('end', () => {
        received.push({ headers: req.headers, body: JSON.parse(data) });
        res.writeHead(202).end();
        if (received.length === 2) sink.emit('both');
      });
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/events`;
    const service = await startService({ PAYLOAD_LOG_URL: url, PAYLOAD_LOG_RATE: '0' });
    try {
      const api = request(`http://127.0.0.1:${service.port}`);
      const both = nextEvent(sink, 'both');
      // Rate 0: an ordinary confident answer is not logged; the flagged one always is.
      await api.post('/v1/classify').attach('image', product, 'item.png').expect(200);
      const flagged = (await api.post('/v1/classify').send({ pixels: noise() }).expect(200)).body;
      await both;
      assert.equal(received.length, 2);
      const [req, res] = received;
      assert.equal(req.headers['ce-type'], 'org.kubeflow.serving.inference.request');
      assert.equal(res.headers['ce-type'], 'org.kubeflow.serving.inference.response');
      assert.equal(req.headers['ce-id'], flagged.predictionId);
      assert.equal(res.headers['ce-id'], flagged.predictionId);
      assert.equal(req.headers['ce-specversion'], '1.0');
      assert.equal(req.body.inputs[0].datatype, 'UINT8');
      assert.deepEqual(req.body.inputs[0].data, noise(), 'the model input, as the model saw it');
      assert.equal(res.body.ood.flagged, true);
      assert.equal(res.body.label, flagged.label);
    } finally {
      // Shutdown flushes the payload log: by then the record's delivery has been counted.
      await service.stop();
      sink.close();
    }
    assert.equal(await counter(service, 'classifier_payload_log_records_total', { sink: 'http', outcome: 'sent' }), 1);
  });

  it('a receiver that never answers slows no request: every request is answered, drops are counted', async () => {
    const hung: http.ServerResponse[] = [];
    const sink = http.createServer((_req, res) => {
      hung.push(res);
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`;
    const service = await startService({ PAYLOAD_LOG_URL: url, PAYLOAD_LOG_RATE: '1', PAYLOAD_LOG_QUEUE: '2' });
    try {
      const api = request(`http://127.0.0.1:${service.port}`);
      const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => api.post('/v1/classify').send({ pixels: noise(100 + i) })));
      assert.ok(answers.every((a) => a.status === 200));
      const dropped = await counter(service, 'classifier_payload_log_records_total', { sink: 'http', outcome: 'queue_full' });
      assert.ok(dropped > 0, `${dropped} dropped for a full queue`);
    } finally {
      await service.stop();
      for (const r of hung) r.destroy();
      sink.closeAllConnections();
      sink.close();
    }
  });
});
