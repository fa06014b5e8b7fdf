/** The A/B report (GET /v1/ab, docs/ab-testing.md) rendered as tables a person can read. */
import type { AbAnswer, AbComparison, AbExperiment } from './api';
import { type Child, h, num, pct, pValue, rawJson } from './dom';

function table(caption: string, head: string[], rows: Child[][], attrs: Record<string, string> = {}): HTMLTableElement {
  return h(
    'table',
    attrs,
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, ...head.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, ...rows.map((cells) => h('tr', {}, ...cells.map((c, i) => (i === 0 ? h('th', { scope: 'row' }, c) : h('td', {}, c)))))),
  );
}

function interval(low: number | null | undefined, high: number | null | undefined): string {
  if (low === null || low === undefined || high === null || high === undefined) return '';
  return ` [${pct(low)}, ${pct(high)}]`;
}

/** A signed difference in percentage points. */
function points(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '\u2014';
  const p = x * 100;
  return `${p > 0 ? '+' : p < 0 ? '\u2212' : '\u00b1'}${Math.abs(p).toFixed(1)} pp`;
}

function verdictBadge(verdict: string): HTMLElement {
  const kind = verdict === 'candidate-better' ? 'good' : verdict === 'candidate-worse' ? 'bad' : 'neutral';
  return h('span', { class: `badge ${kind}`, 'data-verdict': verdict }, verdict);
}

function comparison(c: AbComparison, confidence: string): HTMLElement {
  const verdict = c.verdict ?? c.decision;
  return h(
    'li',
    { class: 'comparison' },
    h('strong', {}, `${c.candidate} vs ${c.control}: `),
    verdict ? verdictBadge(verdict) : null,
    c.reason ? ` ${c.reason}.` : null,
    h(
      'div',
      { class: 'muted' },
      `Accuracy difference ${points(c.difference)}`,
      c.low !== null && c.high !== null ? ` (always-valid ${confidence} interval ${points(c.low)} to ${points(c.high)})` : '',
      `, p = ${pValue(c.pValue)}`,
      c.labelsNeededPerArm !== null && c.labelsNeededPerArm !== undefined
        ? `; about ${c.labelsNeededPerArm} labels per arm needed for this difference`
        : '',
      '.',
    ),
  );
}

function experimentView(e: AbExperiment): HTMLElement {
  const confidence = e.alpha !== undefined ? `${Math.round((1 - e.alpha) * 100)}%` : '95%';
  const total = e.arms.reduce((s, a) => s + a.assigned, 0);
  const weights = e.arms.reduce((s, a) => s + a.weight, 0) || 1;
  const arms = table(
    `Arms of ${e.experiment} (control: ${e.control})`,
    ['Arm', 'Model', 'Weight', 'Requests', 'Traffic share', 'Labelled', 'Correct', `Accuracy (${confidence} interval)`],
    e.arms.map((a) => [
      a.name,
      a.version ? `${a.model}/${a.version}` : a.model,
      pct(a.weight / weights, 0),
      a.assigned,
      total > 0 ? pct(a.assigned / total) : '\u2014',
      a.labelled,
      a.correct,
      a.accuracy === null ? 'no labels yet' : `${pct(a.accuracy)}${interval(a.low, a.high)}`,
    ]),
    { class: 'arms' },
  );
  const srm = e.sampleRatio;
  const overall = e.verdict ?? e.decision;
  return h(
    'div',
    { class: 'experiment', 'data-experiment': e.experiment },
    h('h3', {}, `Experiment ${e.experiment}`, overall ? ' ' : null, overall ? verdictBadge(overall) : null),
    arms,
    srm
      ? h(
          'p',
          { class: srm.mismatch ? 'warning' : 'muted' },
          srm.mismatch
            ? `Sample-ratio mismatch: the traffic split does not match the weights (p = ${pValue(srm.pValue)}); no verdict until routing and feedback are fixed.`
            : `Traffic split consistent with the weights (sample-ratio test p = ${pValue(srm.pValue)}).`,
        )
      : null,
    e.comparisons && e.comparisons.length > 0
      ? h('div', {}, h('h4', {}, 'Verdict'), h('ul', { class: 'comparisons' }, ...e.comparisons.map((c) => comparison(c, confidence))))
      : null,
  );
}

/** The report for one window ("1h" or "24h"). */
export function renderAb(report: AbAnswer, window: string): HTMLElement {
  const accuracy = report.accuracy?.[window] ?? [];
  const drift = report.drift?.[window] ?? [];
  const shadow = report.shadow?.[window] ?? [];
  return h(
    'div',
    { class: 'ab-report' },
    report.experiment
      ? experimentView(report.experiment)
      : h('p', { class: 'muted' }, 'No experiment is running: without a routing config every request goes to the default model.'),
    h('h3', {}, `Observed accuracy, last ${window}`),
    accuracy.length === 0
      ? h(
          'p',
          { class: 'muted' },
          `No feedback in the last ${window}: accuracy is known only for predictions whose true label was sent back.`,
        )
      : table(
          `Accuracy from feedback, last ${window}`,
          ['Model / arm', 'Labelled', 'Correct', 'Observed accuracy', 'Promised by confidence'],
          accuracy.map((r) => [
            `${r.model} / ${r.arm}`,
            r.figures.labelled,
            r.figures.correct,
            pct(r.figures.observed),
            pct(r.figures.expected),
          ]),
        ),
    h('h3', {}, `Drift, last ${window}`),
    drift.length === 0
      ? h('p', { class: 'muted' }, `No predictions in the last ${window}.`)
      : table(
          `Drift against each model's reference, last ${window}`,
          ['Model', 'Predictions', 'Estimated accuracy', 'PSI', 'JS distance', 'KS p', 'Class-mix p', 'Drift'],
          drift.map((d) => [
            d.model,
            d.report.samples,
            pct(d.report.estimatedAccuracy),
            num(d.report.psi),
            num(d.report.jsDistance),
            pValue(d.report.ksPValue),
            pValue(d.report.classChiSquarePValue),
            h(
              'span',
              {},
              h('span', { class: d.report.drift ? 'badge bad' : 'badge neutral' }, d.report.drift ? 'drift' : 'no drift'),
              d.report.reasons.length > 0 ? h('span', { class: 'muted' }, ` ${d.report.reasons.join('; ')}`) : null,
            ),
          ]),
          { class: 'drift' },
        ),
    shadow.length > 0
      ? table(
          `Shadow agreement, last ${window}`,
          ['Served model', 'Shadow model', 'Compared', 'Top-1 agreement'],
          shadow.map((s) => [s.served, s.shadow, s.compared, pct(s.agreement)]),
        )
      : null,
    rawJson(report, 'Raw report (JSON)'),
  );
}
