/**
 * The metric table in docs/monitoring.md ("## Metrics") against the service's
 * registry: every `classifier_*` family the registry holds has a row, every
 * `classifier_*` name in the table is a family the registry holds (histogram
 * series by their family's name), and each row's type is the family's type.
 * A family added to src/monitoring/metrics.ts without a row fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { bareMetrics, ROOT } from '../helpers';

const DOC = path.join(ROOT, 'docs/monitoring.md');

/** The `classifier_*` families the registry holds, with their types (counter, gauge, histogram, ...). */
function registryFamilies(): Map<string, string> {
  const { registry } = bareMetrics(false);
  return new Map(
    registry
      .getMetricsAsArray()
      .filter((m) => m.name.startsWith('classifier_'))
      .map((m) => [m.name, String(m.type)]),
  );
}

interface TableRow {
  line: number;
  /** `classifier_*` names in the metric column. */
  names: string[];
  /** The type column, e.g. "counter", "histogram (0.5 ms .. 2.5 s)", "gauge (1)". */
  type: string;
  /** `classifier_*` names anywhere in the row (the metric column or the notes). */
  mentioned: string[];
}

/** The rows of the table under "## Metrics" in docs/monitoring.md. */
function metricTable(markdown: string): TableRow[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.trim() === '## Metrics');
  assert.ok(start >= 0, 'docs/monitoring.md has a "## Metrics" section');
  const rows: TableRow[] = [];
  let inTable = false;
  for (let i = start + 1; i < lines.length && !lines[i].startsWith('## '); i++) {
    const line = lines[i].trim();
    if (!line.startsWith('|')) {
      if (inTable) break; // the first table of the section only
      continue;
    }
    inTable = true;
    const cells = line
      .slice(1, line.endsWith('|') ? -1 : undefined)
      .split('|')
      .map((c) => c.trim());
    if (cells[0] === 'metric' || /^:?-+:?$/.test(cells[0])) continue; // header and separator
    const backticked = (text: string) => [...text.matchAll(/`(classifier_[a-z0-9_]+)`/g)].map((m) => m[1]);
    rows.push({ line: i + 1, names: backticked(cells[0]), type: cells[1] ?? '', mentioned: backticked(line) });
  }
  assert.ok(rows.length > 0, 'the "## Metrics" section has a table');
  return rows;
}

/** A histogram's series (`_bucket`, `_sum`, `_count`) named by their family. */
function family(name: string, families: Map<string, string>): string {
  if (families.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return families.get(base) === 'histogram' ? base : name;
}

describe('docs/monitoring.md metric table', () => {
  const families = registryFamilies();
  const rows = metricTable(readFileSync(DOC, 'utf8'));

  it('reads the families from the registry', () => {
    // What the service itself relies on, so an empty or broken read cannot pass.
    for (const name of ['classifier_requests_total', 'classifier_confidence', 'classifier_model_load_failed']) {
      assert.ok(families.has(name), name);
    }
    assert.ok(families.size >= 20, `${families.size} classifier_ families`);
  });

  it('has a row for every classifier_ family the service exports', () => {
    const documented = new Set(rows.flatMap((r) => r.names.map((n) => family(n, families))));
    const missing = [...families.keys()].filter((n) => !documented.has(n));
    assert.deepEqual(missing, [], `families without a row in docs/monitoring.md's metric table: ${missing.join(', ')}`);
  });

  it('names only families the service exports', () => {
    const unknown = rows.flatMap((r) => r.mentioned.filter((n) => !families.has(family(n, families))).map((n) => `line ${r.line}: ${n}`));
    assert.deepEqual(unknown, [], 'names in the table that src/monitoring/metrics.ts does not register');
  });

  it('gives each family its type and one row', () => {
    const seen = new Map<string, number>();
    for (const r of rows) {
      const type = /^(counter|gauge|histogram|summary)\b/.exec(r.type)?.[1];
      assert.ok(type, `line ${r.line}: the type column starts with counter, gauge, histogram or summary: "${r.type}"`);
      for (const n of r.names) {
        const f = family(n, families);
        if (!families.has(f)) continue; // reported by the test above
        assert.equal(families.get(f), type, `line ${r.line}: ${n} is a ${families.get(f)}`);
        assert.equal(seen.get(f), undefined, `${f} has rows at lines ${seen.get(f)} and ${r.line}`);
        seen.set(f, r.line);
      }
    }
  });
});
