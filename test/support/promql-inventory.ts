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
  /**
   * Alerts only: the quantity the alert compares with its threshold, i.e. the
   * expression without its final comparison and without the guards joined to
   * it by and/unless/or (`job:x:ratio_rate5m > 0.01 and on (job) ... > 0.1`
   * gives `job:x:ratio_rate5m`; an aggregation around a comparison keeps the
   * aggregation). Unlike `expr`, it returns data on a healthy service that has
   * the metric. Undefined when the alert has no comparison (absent()).
   */
  value?: string;
}

/**
 * Grafana's variables as a query with "All" selected over a short range would
 * expand them: intervals 1m, the range 1h, the model and arm variables (used
 * only in =~ matchers) the regex `.*`.
 */
export function expandGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$\{?__range_s\}?/g, '3600')
    .replace(/\$\{?__range_ms\}?/g, '3600000')
    .replace(/\$\{?__interval_ms\}?/g, '60000')
    .replace(/\$\{?__(rate_interval|interval)\}?/g, '1m')
    .replace(/\$\{?__range\}?/g, '1h')
    .replace(/\$\{(model|arm)(:[a-z]+)?\}|\$(model|arm)\b/g, '.*');
}

const CLOSE: Record<string, string> = { '(': ')', '[': ']', '{': '}' };

/**
 * Offsets of the top-level (outside brackets, strings and comments) matches of
 * `operator` in a PromQL expression: binary comparisons or set operators.
 */
function topLevel(expr: string, operator: 'comparison' | 'set'): { at: number; length: number }[] {
  const found: { at: number; length: number }[] = [];
  const stack: string[] = [];
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '"' || c === "'" || c === '`') {
      i++;
      while (i < expr.length && expr[i] !== c) i += expr[i] === '\\' && c !== '`' ? 2 : 1;
      continue;
    }
    if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i++;
      continue;
    }
    if (c in CLOSE) {
      stack.push(CLOSE[c]);
      continue;
    }
    if (c === stack[stack.length - 1]) {
      stack.pop();
      continue;
    }
    if (stack.length > 0) continue;
    if (operator === 'comparison') {
      const two = expr.slice(i, i + 2);
      if (two === '==' || two === '!=' || two === '>=' || two === '<=') {
        found.push({ at: i, length: 2 });
        i++;
      } else if (c === '>' || c === '<') {
        found.push({ at: i, length: 1 });
      }
    } else {
      const m = /^(and|or|unless)\b/.exec(expr.slice(i));
      if (m && (i === 0 || !/[A-Za-z0-9_:]/.test(expr[i - 1]))) {
        found.push({ at: i, length: m[1].length });
        i += m[1].length - 1;
      }
    }
  }
  return found;
}

/** Whether the bracket opening at `open` closes at the last character of `expr`. */
function closesAtEnd(expr: string, open: number): boolean {
  let depth = 0;
  for (let i = open; i < expr.length; i++) {
    const c = expr[i];
    if (c === '"' || c === "'" || c === '`') {
      i++;
      while (i < expr.length && expr[i] !== c) i += expr[i] === '\\' && c !== '`' ? 2 : 1;
      continue;
    }
    if (expr[i] === '(') depth++;
    else if (expr[i] === ')') depth--;
    if (depth === 0) return i === expr.length - 1;
  }
  return false;
}

/** `( x )` -> `x` while the outer brackets enclose everything. */
function unwrap(expr: string): string {
  let e = expr.trim();
  while (e.startsWith('(') && closesAtEnd(e, 0)) e = e.slice(1, -1).trim();
  return e;
}

/**
 * An alert expression without its final comparison (see PromqlExpression.value):
 * the first operand of its top-level and/or/unless, then the left-hand side
 * of its top-level comparison. An aggregation wrapped around the comparison
 * (`max by (model) (x == 1 and y >= 500)`) is kept around the result.
 * Undefined when there is no comparison to remove.
 */
export function alertValueExpression(expr: string): string | undefined {
  let e = unwrap(expr);
  const set = topLevel(e, 'set');
  if (set.length > 0) e = unwrap(e.slice(0, set[0].at));
  const cmp = topLevel(e, 'comparison');
  if (cmp.length > 0) return e.slice(0, cmp[0].at).trim();
  const agg = /^((?:sum|min|max|avg|count|group|stddev|stdvar)\s*(?:(?:by|without)\s*\([^)]*\))?\s*)\(([\s\S]*)\)$/.exec(e);
  if (agg && closesAtEnd(e, agg[1].length)) {
    const inner = alertValueExpression(agg[2]);
    if (inner !== undefined) return `${agg[1]}(${inner})`;
  }
  return undefined;
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
    if (a.expr)
      out.push({ source: `dashboard: annotation ${a.name}`, name: a.name, kind: 'annotation', expr: expandGrafanaVariables(a.expr) });
  }
  for (const g of loadRules().groups) {
    for (const r of g.rules) {
      const name = r.record ?? r.alert!;
      const expr = r.expr.trim();
      if (r.record) out.push({ source: `rules: ${g.name}/${name}`, name, kind: 'record', expr });
      else out.push({ source: `rules: ${g.name}/${name}`, name, kind: 'alert', expr, value: alertValueExpression(expr) });
    }
  }
  return out;
}
