/**
 * Every PromQL expression the project ships: the Grafana dashboard's panel
 * queries, template variables and annotations, and the recording and alert
 * rules, with Grafana's variables replaced by values Prometheus accepts.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { ROOT } from '../helpers';

export const DASHBOARD = path.join(ROOT, 'monitoring/grafana/product-classifier.json');
export const RULES = path.join(ROOT, 'monitoring/prometheus/rules.yml');

export interface PromqlExpression {
  /** Where it comes from, for messages: "dashboard: <panel title> [A]", "rules: <group>/<record or alert>". */
  source: string;
  name: string;
  /**
   * dashboard and record: should return data once the service has had traffic;
   * alert and annotation: return data only while something is wrong.
   */
  kind: 'dashboard' | 'record' | 'alert' | 'annotation';
  expr: string;
}

/** Grafana's variables as a query with "All" selected over a short range would expand them. */
export function expandGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$\{__rate_interval\}|\$\{__interval\}/g, '1m')
    .replace(/\$__range|\$\{__range\}/g, '1h')
    .replace(/\$\{?(model|arm)\}?/g, '.*');
}

interface Panel {
  type: string;
  title: string;
  targets?: { refId: string; expr: string }[];
  panels?: Panel[];
}

export interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
  annotations?: { list: { name: string; expr?: string }[] };
}

export interface RuleFile {
  groups: { name: string; rules: { record?: string; alert?: string; expr: string }[] }[];
}

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
}

export function loadRules(): RuleFile {
  return parse(readFileSync(RULES, 'utf8')) as RuleFile;
}

/** Every panel, rows' nested panels included. */
export function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

export function promqlInventory(): PromqlExpression[] {
  const out: PromqlExpression[] = [];
  const dashboard = loadDashboard();
  for (const p of allPanels(dashboard)) {
    for (const t of p.targets ?? []) {
      out.push({ source: `dashboard: ${p.title} [${t.refId}]`, name: p.title, kind: 'dashboard', expr: expandGrafanaVariables(t.expr) });
    }
  }
  for (const v of dashboard.templating.list) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = q ? /^label_values\((.+),\s*(\w+)\)$/.exec(q) : null;
    // label_values(series, label) is Grafana's; the PromQL it stands for lists the label's values.
    if (m) out.push({ source: `dashboard: variable $${v.name}`, name: v.name, kind: 'dashboard', expr: `group by (${m[2]}) (${m[1]})` });
  }
  for (const a of dashboard.annotations?.list ?? []) {
    if (a.expr) out.push({ source: `dashboard: annotation ${a.name}`, name: a.name, kind: 'annotation', expr: expandGrafanaVariables(a.expr) });
  }
  for (const g of loadRules().groups) {
    for (const r of g.rules) {
      const name = r.record ?? r.alert!;
      out.push({ source: `rules: ${g.name}/${name}`, name, kind: r.record ? 'record' : 'alert', expr: r.expr.trim() });
    }
  }
  return out;
}
