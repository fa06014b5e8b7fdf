/**
 * The replay tool against a running service over real sockets: over HTTP
 * from a folder of labelled images with feedback for every answer, and over
 * gRPC from the official test set with drift switched on part-way. What the
 * replay counted must be what the service counted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { grpcClient, httpClient } from '../../src/tools/replay/clients';
import { parseOptions } from '../../src/tools/replay/options';
import { replay } from '../../src/tools/replay/replay';
import { folderSource, testSetSource } from '../../src/tools/replay/source';
import { FIXTURES, startService } from '../helpers';

type Report = {
  accuracy: Record<string, { model: string; arm: string; figures: { labelled: number; correct: number } }[]>;
  drift: Record<string, { model: string; report: { samples: number; drift: boolean; reasons: string[] } }[]>;
};

describe('traffic replay', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  before(async () => {
    service = await startService();
  });
  after(async () => {
    await service.stop();
  });

  const monitoring = async (): Promise<Report> => (await fetch(`http://127.0.0.1:${service.port}/v1/ab`)).json() as Promise<Report>;

  it('replays a folder over HTTP and every label it sends back is counted', async () => {
    const client = httpClient(`http://127.0.0.1:${service.port}`);
    const labels = await client.labels();
    const opts = parseOptions([
      '--url',
      `http://127.0.0.1:${service.port}`,
      '--rate',
      '0',
      '--count',
      '120',
      '--concurrency',
      '6',
      '--feedback',
      '1',
      '--feedback-delay',
      '0.2',
    ]);
    const progress: number[] = [];
    const s = await replay(opts, {
      client,
      source: folderSource(FIXTURES, labels),
      sourceName: FIXTURES,
      labels,
      onProgress: (p) => progress.push(p.answered),
      progressEveryMs: 100,
    });
    assert.equal(s.sent, 120);
    assert.equal(s.answered, 120, JSON.stringify(s.errors));
    assert.equal(s.failed, 0);
    assert.deepEqual(s.feedback, { sent: 120, accepted: 120, duplicates: 0, failed: 0, errors: {} });
    assert.equal(s.driftStartedAt, null);
    assert.equal(progress.at(-1), 120);
    const [tally] = s.arms;
    assert.equal(s.arms.length, 1);
    assert.equal(tally.model, 'baseline');
    assert.ok(tally.correct / tally.answered > 0.85, `top-1 on the fixtures ${tally.correct}/${tally.answered}`);

    const acc = (await monitoring()).accuracy['1h'].find((a) => a.model === 'baseline')!;
    assert.equal(acc.figures.labelled, 120);
    assert.equal(acc.figures.correct, tally.correct, 'the service counted the same right answers as the replay');
  });

  it('replays the test set over gRPC and the drift it injects is flagged', async () => {
    const client = grpcClient(`127.0.0.1:${service.grpcPort}`);
    try {
      const labels = await client.labels();
      const before = (await monitoring()).drift['1h'].find((d) => d.model === 'baseline')?.report.samples ?? 0;
      const opts = parseOptions([
        '--grpc',
        `127.0.0.1:${service.grpcPort}`,
        '--rate',
        '0',
        '--count',
        '700',
        '--concurrency',
        '8',
        '--feedback',
        '0',
        '--drift',
        'rotate:35,noise:25',
        '--drift-from',
        '150',
      ]);
      const s = await replay(opts, { client, source: testSetSource(labels.length), sourceName: 'test set', labels });
      assert.equal(s.answered, 700, JSON.stringify(s.errors));
      assert.equal(s.driftStartedAt, 150);
      assert.equal(s.drifted, 550);
      const clean = s.arms.find((a) => a.phase === 'clean')!;
      const drifted = s.arms.find((a) => a.phase === 'drifted')!;
      assert.equal(clean.answered, 150);
      assert.ok(clean.correct / clean.answered > 0.85, `clean top-1 ${clean.correct}/${clean.answered}`);
      assert.ok(drifted.correct / drifted.answered < 0.7, `drifted top-1 ${drifted.correct}/${drifted.answered}`);
      assert.ok(drifted.meanConfidence < clean.meanConfidence, 'the models are less sure of drifted images');

      const report = (await monitoring()).drift['1h'].find((d) => d.model === 'baseline')!.report;
      assert.equal(report.samples, before + 700);
      assert.equal(report.drift, true, report.reasons.join('; '));
    } finally {
      client.close();
    }
  });
});

describe('traffic replay against a service that abstains', () => {
  let service: Awaited<ReturnType<typeof startService>>;
  before(async () => {
    // Every answer falls under this minimum confidence: the service abstains on all of them.
    service = await startService({ ABSTAIN: 'ood+confidence', ABSTAIN_MIN_CONFIDENCE: '1' });
  });
  after(async () => {
    await service.stop();
  });

  for (const transport of ['http', 'grpc'] as const) {
    it(`counts abstentions apart from right and wrong answers (${transport})`, async () => {
      const client = transport === 'http' ? httpClient(`http://127.0.0.1:${service.port}`) : grpcClient(`127.0.0.1:${service.grpcPort}`);
      try {
        const labels = await client.labels();
        const target = transport === 'http' ? ['--url', `http://127.0.0.1:${service.port}`] : ['--grpc', `127.0.0.1:${service.grpcPort}`];
        const opts = parseOptions([...target, '--rate', '0', '--count', '20', '--concurrency', '4', '--feedback', '0']);
        const s = await replay(opts, { client, source: folderSource(FIXTURES, labels), sourceName: FIXTURES, labels });
        assert.equal(s.answered, 20, JSON.stringify(s.errors));
        const [tally] = s.arms;
        assert.equal(tally.abstained, 20);
        assert.equal(tally.correct, 0, 'an abstention is neither right nor wrong');
      } finally {
        client.close();
      }
    });
  }
});
