/**
 * The monitoring assets: rules and config pass promtool (check and the rule
 * unit tests), the dashboard is what its generator makes, has the model and
 * arm variables, explains every panel, and asks only for metrics the service
 * exports or the rules record. That each expression returns data is checked
 * against a real Prometheus in test/e2e/prometheus.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { bareMetrics, ROOT } from '../helpers';
import {
  alertValueExpression,
  allPanels,
  expandGrafanaVariables,
  loadDashboard,
  loadRules,
  promqlInventory,
} from '../support/promql-inventory';

const PROM_DIR = path.join(ROOT, 'monitoring/prometheus');

function promtool(args: string[], cwd = PROM_DIR): void {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool not found (${r.error.message}): bash scripts/setup.sh installs Debian's prometheus package`);
  assert.equal(r.status, 0, `promtool ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
}

/**
 * Metric families the service's registry holds (src/monitoring/metrics.ts):
 * its `classifier_*` families and prom-client's default Node.js metrics under
 * the names prom-client gives them, as registered, not as spelled in a source.
 */
function serviceMetricNames(): Set<string> {
  return new Set(
    bareMetrics(true)
      .registry.getMetricsAsArray()
      .map((m) => m.name),
  );
}

/** prom-client's default metrics, asked of prom-client itself. */
function promClientDefaultNames(): string[] {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry.getMetricsAsArray().map((m) => m.name);
}

describe('Service metrics', () => {
  it("keep prom-client's default names, without the gauges named like counters", () => {
    const names = serviceMetricNames();
    const defaults = promClientDefaultNames();
    assert.ok(defaults.includes('process_cpu_seconds_total') && defaults.includes('nodejs_heap_size_used_bytes'));
    const removed = defaults.filter((n) => /^nodejs_active_[a-z]+_total$/.test(n));
    assert.deepEqual(removed.sort(), ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']);
    for (const n of defaults) assert.equal(names.has(n), !removed.includes(n), n);
    for (const n of names) assert.ok(n.startsWith('classifier_') || defaults.includes(n), `${n}: classifier_ or a prom-client default`);
  });

  it('pass promtool check metrics, default metrics included', async () => {
    const metrics = bareMetrics(true);
    metrics.requests.inc({ transport: 'http', endpoint: 'classify', model: 'baseline', arm: 'control', code: 'OK' });
    metrics.requestDuration.observe({ transport: 'http', endpoint: 'classify', arm: 'control', code: 'OK' }, 0.004);
    metrics.inferenceDuration.observe({ model: 'baseline', version: '1' }, 0.002);
    metrics.batchSize.observe({ model: 'baseline', version: '1' }, 3);
    metrics.confidence.observe({ model: 'baseline', arm: 'control' }, 0.97);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: await metrics.registry.metrics(), encoding: 'utf8' });
    if (r.error) throw new Error(`promtool not found (${r.error.message}): bash scripts/setup.sh installs Debian's prometheus package`);
    assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
  });
});

describe('Prometheus rules and config', () => {
  it('pass promtool check rules and check config', () => {
    promtool(['check', 'rules', 'rules.yml']);
    promtool(['check', 'config', 'prometheus.yml']);
  });

  it('pass their promtool unit tests (each alert firing and quiet)', () => {
    promtool(['test', 'rules', 'rules.test.yml']);
    const tests = readFileSync(path.join(PROM_DIR, 'rules.test.yml'), 'utf8');
    for (const g of loadRules().groups) {
      for (const r of g.rules) if (r.alert) assert.match(tests, new RegExp(`alertname: ${r.alert}\\b`), `${r.alert} has a unit test`);
    }
  });
});

describe('Grafana dashboard', () => {
  const dashboard = loadDashboard();
  const panels = allPanels(dashboard).filter((p) => p.type !== 'row');

  it('is what scripts/grafana-dashboard.mjs makes', () => {
    const r = spawnSync(process.execPath, ['scripts/grafana-dashboard.mjs', '--check'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  it('has model and arm variables and a Prometheus datasource input', () => {
    const names = dashboard.templating.list.map((v) => v.name);
    for (const v of ['datasource', 'model', 'arm']) assert.ok(names.includes(v), `variable ${v}`);
    const raw = JSON.parse(readFileSync(path.join(ROOT, 'monitoring/grafana/product-classifier.json'), 'utf8'));
    assert.equal(raw.__inputs[0].pluginId, 'prometheus');
    assert.ok(new Set(panels.map((p: any) => p.id)).size === panels.length, 'panel ids are unique');
    for (const p of panels as any[]) assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the grid`);
  });

  it('explains every panel and gives each a query', () => {
    assert.ok(panels.length >= 20);
    for (const p of panels as any[]) {
      assert.ok(p.description && p.description.length > 40, `${p.title} has a description`);
      assert.ok(p.targets?.length > 0 && p.targets.every((t: { expr: string }) => t.expr.trim()), `${p.title} has queries`);
    }
    const titles = panels.map((p) => p.title.toLowerCase()).join('\n');
    for (const topic of [
      'latency',
      'error',
      'split',
      'sample-ratio',
      'wilson',
      'always-valid',
      'needed',
      'confidence distribution',
      'estimated vs observed',
      'psi',
      'class mix',
      'coverage',
    ]) {
      assert.ok(titles.includes(topic), `a panel on ${topic}`);
    }
  });

  it('uses only metrics the service exports or the rules record', () => {
    const defined = serviceMetricNames();
    const recorded = new Set(loadRules().groups.flatMap((g) => g.rules.map((r) => r.record).filter(Boolean)));
    // The service's own prefix and those of prom-client's defaults (process_, nodejs_).
    const prefixes = new Set(['classifier', ...promClientDefaultNames().map((n) => n.split('_')[0])]);
    const metricName = new RegExp(`\\b[a-z_]+:[a-z0-9_:]+\\b|\\b(?:${[...prefixes].join('|')})_[a-z0-9_]+\\b`, 'g');
    const unknown: string[] = [];
    for (const e of promqlInventory()) {
      for (const [name] of e.expr.matchAll(metricName)) {
        if (name.includes(':')) {
          if (!recorded.has(name)) unknown.push(`${e.source}: ${name}`);
        } else if (!defined.has(name) && !defined.has(name.replace(/_(bucket|sum|count)$/, ''))) {
          unknown.push(`${e.source}: ${name}`);
        }
      }
    }
    assert.deepEqual(unknown, []);
  });
});

describe('PromQL inventory', () => {
  const inventory = promqlInventory();

  it('lists every dashboard query, recording rule and alert', () => {
    const rules = loadRules().groups.flatMap((g) => g.rules);
    assert.equal(inventory.filter((e) => e.kind === 'record').length, rules.filter((r) => r.record).length);
    assert.equal(inventory.filter((e) => e.kind === 'alert').length, rules.filter((r) => r.alert).length);
    const targets = allPanels(loadDashboard()).flatMap((p) => p.targets ?? []);
    assert.ok(inventory.filter((e) => e.kind === 'dashboard').length >= targets.length);
    for (const e of inventory) assert.doesNotMatch(e.expr, /\$\{?[A-Za-z_]/, `${e.source}: no Grafana variable left`);
  });

  it('gives each alert the quantity it compares, except absent()', () => {
    for (const e of inventory.filter((x) => x.kind === 'alert')) {
      if (/^absent(_over_time)?\(/.test(e.expr)) assert.equal(e.value, undefined, e.source);
      else assert.ok(e.value && e.value.length < e.expr.length, `${e.source}: ${e.value}`);
    }
  });

  it('strips only the top-level comparison and guards', () => {
    assert.equal(alertValueExpression('up{job="a"} == 0'), 'up{job="a"}');
    assert.equal(
      alertValueExpression('sum by (job) (rate(x_total{code!="OK",l=~"a>b"}[5m])) / sum(y) > 0.01 and on (job) z > 0.1'),
      'sum by (job) (rate(x_total{code!="OK",l=~"a>b"}[5m])) / sum(y)',
    );
    assert.equal(alertValueExpression('(\n  a or b * 0\n) == 0'), '(\n  a or b * 0\n)');
    assert.equal(
      alertValueExpression('max by (job, model) (\n  d{window="1h"} == 1\nand\n  s >= 500\n)'),
      'max by (job, model) (d{window="1h"})',
    );
    assert.equal(alertValueExpression('a:b:ratio_rate1h > (14.4 * 0.01) and a:b:ratio_rate5m > (14.4 * 0.01)'), 'a:b:ratio_rate1h');
    assert.equal(alertValueExpression('min by (arm) (p{signal="srm"}) < 0.001'), 'min by (arm) (p{signal="srm"})');
    assert.equal(alertValueExpression('absent(up{job="a"})'), undefined);
    assert.equal(alertValueExpression('sum(rate(brand_total[5m]))'), undefined);
  });

  it('expands Grafana variables to values Prometheus accepts', () => {
    assert.equal(
      expandGrafanaVariables(
        'sum(rate(x{model=~"$model", arm=~"${arm}"}[$__rate_interval])) / sum(increase(y[$__range])) * $__interval_ms',
      ),
      'sum(rate(x{model=~".*", arm=~".*"}[1m])) / sum(increase(y[1h])) * 60000',
    );
  });

  it('is valid PromQL throughout, alert quantities included (promtool parses each as a recording rule)', () => {
    const exprs = inventory.flatMap((e) => [
      { source: e.source, expr: e.expr },
      ...(e.value ? [{ source: `${e.source} (value)`, expr: e.value }] : []),
    ]);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-promql-'));
    try {
      const rules = exprs.map((e, i) => ({ record: `inventory:expr_${i}`, expr: e.expr, labels: { source: e.source } }));
      writeFileSync(path.join(dir, 'inventory.yml'), stringify({ groups: [{ name: 'inventory', rules }] }, { lineWidth: 0 }));
      promtool(['check', 'rules', 'inventory.yml'], dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
