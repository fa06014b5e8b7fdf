/**
 * Monitoring end to end, with Debian's real Prometheus: the built service
 * runs an A/B test at full coverage, Prometheus scrapes it every second and
 * evaluates monitoring/prometheus/rules.yml, and the replay tool drives
 * traffic and feedback. Then:
 *  - `promtool check metrics` accepts /metrics;
 *  - after clean traffic, every PromQL expression of the Grafana dashboard
 *    and every recording rule is valid and returns data, every alert
 *    expression is valid, the rule groups evaluate without error, and no
 *    drift gauge or drift alert expression crosses its threshold;
 *  - after the same replay with injected drift, the drift gauges cross
 *    their thresholds and the drift alerts' expressions hold.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from '../helpers';
import { type PromqlExpression, promqlInventory } from '../support/promql-inventory';
import { type PrometheusProcess, query, type ServiceProcess, startPrometheus, startServiceProcess } from '../support/processes';
import { pollUntil } from '../support/wait';

const JOB = 'product-classifier';
const RULES = path.join(ROOT, 'monitoring/prometheus/rules.yml');

const isDriftAlert = (e: PromqlExpression) => e.kind === 'alert' && /Drift|ClassMix/.test(e.name);

function promtoolAvailable(): boolean {
  return spawnSync('promtool', ['--version']).status === 0;
}

function replayCli(args: string[]): { code: number | null; summary: any; stderr: string } {
  const r = spawnSync(process.execPath, ['dist/src/tools/replay.js', ...args, '--json', '--quiet'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 5 * 60_000,
  });
  let summary: unknown = null;
  try {
    summary = JSON.parse(r.stdout);
  } catch {
    /* reported below */
  }
  return { code: r.status, summary, stderr: r.stderr };
}

async function values(prom: PrometheusProcess, expr: string): Promise<{ metric: Record<string, string>; value: number }[]> {
  const r = await query(prom.url, expr);
  assert.equal(r.status, 'success', `${expr}: ${r.error}`);
  return r.data!.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
}

/**
 * Until Prometheus has scraped the service after `since` (so that scrape saw
 * all the traffic sent before it), then until every rule group has evaluated
 * twice after that scrape was stored: the second round reads recording rules
 * the first round wrote, as the alerts do. Prometheus is another process with
 * no event to wait on, so its API is asked until that holds; nothing is
 * assumed about how long a scrape or an evaluation takes.
 */
async function freshScrape(prom: PrometheusProcess, since: number): Promise<void> {
  let storedAt = 0;
  let targets: unknown;
  await pollUntil(
    'a scrape of the service after the traffic',
    async () => {
      const res = await fetch(`${prom.url}/api/v1/targets`);
      const body = (await res.json()) as {
        data: { activeTargets: { lastScrape: string; lastScrapeDuration: number; health: string }[] };
      };
      targets = body.data.activeTargets;
      const t = body.data.activeTargets[0];
      if (!t || t.health !== 'up' || !(Date.parse(t.lastScrape) > since + 1000)) return false;
      storedAt = Date.parse(t.lastScrape) + 1000 * t.lastScrapeDuration;
      return true;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(targets)}`);
  });
  /** The latest group evaluation, once every group has evaluated after `t`. */
  const everyGroupEvaluatedAfter = async (t: number): Promise<number | undefined> => {
    const body = (await (await fetch(`${prom.url}/api/v1/rules`)).json()) as { data: { groups: { lastEvaluation: string }[] } };
    const at = body.data.groups.map((g) => Date.parse(g.lastEvaluation));
    return at.length > 0 && at.every((x) => x > t) ? Math.max(...at) : undefined;
  };
  let firstRound = 0;
  await pollUntil(
    'every rule group evaluated after that scrape',
    async () => {
      firstRound = (await everyGroupEvaluatedAfter(storedAt)) ?? 0;
      return firstRound > 0;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  await pollUntil('every rule group evaluated once more', async () => (await everyGroupEvaluatedAfter(firstRound)) !== undefined, {
    timeoutMs: 30_000,
    intervalMs: 250,
  });
}

describe(
  'monitoring with a real Prometheus',
  { skip: !promtoolAvailable() && 'Debian prometheus not installed: bash scripts/setup.sh installs it', timeout: 10 * 60_000 },
  () => {
    let dir: string;
    let service: ServiceProcess;
    let prom: PrometheusProcess;
    let inventory: PromqlExpression[];

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'pc-prometheus-'));
      // Both arms at full coverage, so each model sees enough traffic to judge drift.
      const routing = path.join(dir, 'routing.json');
      writeFileSync(
        routing,
        JSON.stringify({
          experiment: 'e2e-monitoring',
          control: 'baseline',
          coverage: 1,
          arms: [
            { name: 'baseline', model: 'baseline', weight: 50 },
            { name: 'dendritic', model: 'dendritic', weight: 50 },
          ],
        }),
      );
      // Abstention and payload logging on, so their panels and rules have data to show.
      service = await startServiceProcess({
        ROUTING_FILE: routing,
        RECEIPT_SECRET: 'e2e-monitoring-receipt-secret',
        ABSTAIN: 'ood+confidence',
        PAYLOAD_LOG_FILE: path.join(dir, 'payload.jsonl'),
      });
      prom = await startPrometheus(dir, { job: JOB, targets: [`127.0.0.1:${service.metricsPort}`], ruleFiles: [RULES] });
      inventory = promqlInventory();
    });
    after(async () => {
      await prom?.stop();
      await service?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('serves metrics that promtool check metrics accepts', async () => {
      // Some traffic first, so that every family has samples.
      // Every replay below sends different test images: a repeated image is not a new sample for the drift tests.
      const warm = replayCli([
        '--url',
        service.http,
        '--offset',
        '9900',
        '--rate',
        '0',
        '--count',
        '50',
        '--feedback',
        '1',
        '--feedback-delay',
        '0',
      ]);
      assert.equal(warm.code, 0, warm.stderr);
      const text = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
      const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
    });

    it('answers every dashboard and rule expression after clean traffic, with no drift', async () => {
      // Clean traffic over both transports: 1,600 images, labels for 60% of them; a few bad requests, as real traffic has.
      const http = replayCli([
        '--url',
        service.http,
        '--rate',
        '0',
        '--count',
        '1000',
        '--concurrency',
        '8',
        '--keys',
        '500',
        '--feedback',
        '0.6',
        '--feedback-delay',
        '0.2',
      ]);
      assert.equal(http.code, 0, http.stderr);
      const grpc = replayCli([
        '--grpc',
        `127.0.0.1:${service.grpcPort}`,
        '--offset',
        '1000',
        '--rate',
        '0',
        '--count',
        '600',
        '--concurrency',
        '8',
        '--keys',
        '500',
        '--feedback',
        '0.6',
        '--feedback-delay',
        '0.2',
        '--seed',
        '2',
      ]);
      assert.equal(grpc.code, 0, grpc.stderr);
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${service.http}/v1/classify`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ pixels: [1, 2, 3] }),
        });
        assert.equal(res.status, 400);
        const forged = await fetch(`${service.http}/v1/feedback`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ predictionId: `forged-${i}`, label: 'Bag' }),
        });
        assert.equal(forged.status, 400);
      }
      await freshScrape(prom, Date.now());

      const empty: string[] = [];
      for (const e of inventory) {
        const r = await query(prom.url, e.expr);
        assert.equal(r.status, 'success', `${e.source}: invalid PromQL: ${r.error}\n${e.expr}`);
        if ((e.kind === 'dashboard' || e.kind === 'record') && r.data!.result.length === 0) empty.push(`${e.source}: ${e.expr}`);
      }
      assert.deepEqual(empty, [], 'expressions that returned no data');

      const rules = (await (await fetch(`${prom.url}/api/v1/rules`)).json()) as {
        data: { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] };
      };
      const unhealthy = rules.data.groups.flatMap((g) =>
        g.rules.filter((r) => r.health !== 'ok').map((r) => `${g.name}/${r.name}: ${r.health} ${r.lastError ?? ''}`),
      );
      assert.deepEqual(unhealthy, []);
      assert.ok(rules.data.groups.length > 0, 'Prometheus loaded the rule groups');

      const detected = await values(prom, 'classifier_drift_detected{window="1h"}');
      assert.equal(detected.length, 2, 'both models judged');
      for (const d of detected) assert.equal(d.value, 0, `no drift on clean traffic for ${d.metric.model}`);
      for (const e of inventory.filter(isDriftAlert)) {
        assert.deepEqual(await values(prom, e.expr), [], `${e.source} does not hold on clean traffic`);
      }
    });

    it('crosses the drift thresholds and alert expressions when the replay injects drift', async () => {
      const drifted = replayCli([
        '--url',
        service.http,
        '--offset',
        '1600',
        '--rate',
        '0',
        '--count',
        '2400',
        '--concurrency',
        '8',
        '--keys',
        '500',
        '--feedback',
        '0.3',
        '--feedback-delay',
        '0',
        '--drift',
        'rotate:30,blur:1',
        '--seed',
        '3',
      ]);
      assert.equal(drifted.code, 0, drifted.stderr);
      assert.equal(drifted.summary.drifted, 2400);
      await freshScrape(prom, Date.now());

      for (const d of await values(prom, 'classifier_drift_detected{window="1h"}'))
        assert.equal(d.value, 1, `drift flagged for ${d.metric.model}`);
      for (const d of await values(prom, 'classifier_drift_score{signal="psi",window="1h"}'))
        assert.ok(d.value > 0.2, `PSI ${d.value} for ${d.metric.model}`);
      const driftAlerts = inventory.filter(isDriftAlert);
      assert.ok(driftAlerts.length >= 3, 'the rules have per-pod, fleet confidence and class-mix drift alerts');
      for (const e of driftAlerts) {
        const held = await values(prom, e.expr);
        assert.ok(held.length > 0, `${e.source} holds under drift`);
      }
      // Prometheus itself has the alerts pending (they fire after their `for:` duration).
      const pending = await values(prom, 'ALERTS{alertstate="pending"}');
      for (const e of driftAlerts)
        assert.ok(
          pending.some((a) => a.metric.alertname === e.name),
          `${e.name} pending`,
        );
    });
  },
);
