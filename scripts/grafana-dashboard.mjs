#!/usr/bin/env node
// Writes monitoring/grafana/product-classifier.json, the Grafana dashboard,
// from the panel list below (one place to edit; the JSON is what users
// import). `node scripts/grafana-dashboard.mjs --check` exits 1 when the
// committed JSON differs from what this script makes.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'monitoring/grafana/product-classifier.json');
const DS = { type: 'prometheus', uid: '${datasource}' };

let nextId = 1;
let y = 0;
const panels = [];

function row(title) {
  panels.push({ type: 'row', id: nextId++, title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
  y += 1;
}

/** Panels laid out left to right in rows of 24 units. */
let x = 0;
let rowHeight = 0;
function panel({
  type = 'timeseries',
  title,
  description,
  targets,
  unit,
  w = 8,
  h = 8,
  min,
  max,
  thresholds,
  options,
  mappings,
  overrides,
  extra,
}) {
  if (x + w > 24) {
    x = 0;
    y += rowHeight;
    rowHeight = 0;
  }
  const defaults = { unit };
  if (min !== undefined) defaults.min = min;
  if (max !== undefined) defaults.max = max;
  if (thresholds) {
    // Drawn as dashed lines on time series: the value that matters to the reader.
    defaults.thresholds = {
      mode: 'absolute',
      steps: [{ color: 'green', value: null }, ...thresholds.map(([value, color]) => ({ color, value }))],
    };
    if (type === 'timeseries') defaults.custom = { thresholdsStyle: { mode: 'dashed' } };
  }
  if (mappings) defaults.mappings = mappings;
  panels.push({
    type,
    id: nextId++,
    title,
    description,
    datasource: DS,
    gridPos: { h, w, x, y },
    fieldConfig: { defaults, overrides: overrides ?? [] },
    options: options ?? {},
    targets: targets.map(([expr, legendFormat], i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: DS,
      expr,
      legendFormat,
      ...(type === 'heatmap' ? { format: 'heatmap' } : {}),
    })),
    ...(extra ?? {}),
  });
  x += w;
  rowHeight = Math.max(rowHeight, h);
}

function endRow() {
  y += rowHeight;
  x = 0;
  rowHeight = 0;
}

const SEL = 'model=~"$model", arm=~"$arm"';

// ---- service health ------------------------------------------------------
row('Service health');
panel({
  title: 'Requests per second by transport and arm',
  description:
    'Answered requests (classify, batch, feedback, OIP infer) summed over pods. A drop to zero with pods up means callers cannot reach the service (see the No traffic alert).',
  targets: [[`sum by (transport, arm) (rate(classifier_requests_total{arm=~"$arm"}[$__rate_interval]))`, '{{transport}} {{arm}}']],
  unit: 'reqps',
});
panel({
  title: 'Error ratio',
  description:
    "Server-side failures (INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) per transport, and all non-OK answers including clients' bad input. The server line should sit at 0; above 1% for 5 minutes pages.",
  targets: [
    ['job_transport:classifier_server_errors:ratio_rate5m', 'server errors {{transport}}'],
    [
      'sum by (transport) (rate(classifier_requests_total{code!="OK"}[$__rate_interval])) / sum by (transport) (rate(classifier_requests_total[$__rate_interval])) or sum by (transport) (rate(classifier_requests_total[$__rate_interval])) * 0',
      'all errors {{transport}}',
    ],
  ],
  unit: 'percentunit',
  min: 0,
  thresholds: [[0.01, 'red']],
});
panel({
  title: 'Latency p50 / p95 / p99 by transport and arm',
  description:
    'Successful requests, from the request-duration histogram summed over pods. The SLO is 99% under 100 ms; an arm whose p99 stands apart points at its model.',
  targets: [
    [`job_transport_arm:classifier_request_duration_seconds:p50_5m{arm=~"$arm"}`, 'p50 {{transport}} {{arm}}'],
    [`job_transport_arm:classifier_request_duration_seconds:p95_5m{arm=~"$arm"}`, 'p95 {{transport}} {{arm}}'],
    [`job_transport_arm:classifier_request_duration_seconds:p99_5m{arm=~"$arm"}`, 'p99 {{transport}} {{arm}}'],
  ],
  unit: 's',
  thresholds: [[0.1, 'red']],
});
panel({
  type: 'stat',
  title: 'Latency SLO: burn rate (1 h / 6 h)',
  description:
    "Share of successful requests over 100 ms divided by the 1% budget. 1 spends the month's budget in a month; 14.4 over an hour pages, 6 over six hours pages, 3 over a day opens a ticket.",
  targets: [
    ['job:classifier_latency_slo_misses:ratio_rate1h / 0.01', '1 h'],
    ['job:classifier_latency_slo_misses:ratio_rate6h / 0.01', '6 h'],
  ],
  unit: 'none',
  thresholds: [
    [1, 'yellow'],
    [6, 'orange'],
    [14.4, 'red'],
  ],
  w: 6,
});
panel({
  title: 'Model inference time p99 by model',
  description:
    'One runtime call (a batch) per observation. Compare with the request latency: the difference is decoding, preprocessing and queueing.',
  targets: [
    [
      'histogram_quantile(0.99, sum by (model, le) (rate(classifier_inference_duration_seconds_bucket{model=~"$model"}[$__rate_interval])))',
      '{{model}}',
    ],
  ],
  unit: 's',
  w: 12,
});
panel({
  type: 'stat',
  title: 'Pods up',
  description: 'Pods Prometheus can scrape. Below the HPA minimum (2) means crash loops or scheduling trouble.',
  targets: [['sum(up{job="product-classifier"})', 'pods']],
  unit: 'none',
  w: 6,
  thresholds: [[2, 'green']],
});
endRow();

// ---- the A/B test -----------------------------------------------------------
row('A/B test');
panel({
  title: 'Traffic split: actual vs configured',
  description:
    'Share of experiment requests each arm received (summed over pods) against the configured weight. A gap that the SRM p-value calls significant invalidates the comparison.',
  targets: [
    ['arm:classifier_ab_requests:share{arm=~"$arm"}', 'actual {{arm}}'],
    ['arm:classifier_arm_weight:share{arm=~"$arm"}', 'configured {{arm}}'],
  ],
  unit: 'percentunit',
  min: 0,
  max: 1,
});
panel({
  type: 'stat',
  title: 'Sample-ratio mismatch p-value',
  description:
    'Chi-square test of the observed split against the weights, per pod (lowest shown). Below 0.001 the split is broken: fix routing keys or the config before reading any accuracy result.',
  targets: [['min(classifier_ab_p_value{signal="srm"})', 'SRM p']],
  w: 4,
  extra: {
    fieldConfig: {
      defaults: {
        unit: 'none',
        decimals: 4,
        thresholds: {
          mode: 'absolute',
          steps: [
            { color: 'red', value: null },
            { color: 'green', value: 0.001 },
          ],
        },
      },
      overrides: [],
    },
  },
});
panel({
  type: 'stat',
  title: 'Verdict',
  description:
    'Per candidate arm: better (the always-valid interval for the difference is above 0), worse (below 0), or not decided yet. The lowest pod verdict is shown.',
  targets: [['min by (arm) (classifier_ab_verdict{arm=~"$arm"})', '{{arm}}']],
  unit: 'none',
  w: 4,
  mappings: [
    {
      type: 'value',
      options: {
        1: { text: 'candidate better', color: 'green' },
        0: { text: 'not decided', color: 'blue' },
        '-1': { text: 'candidate worse', color: 'red' },
      },
    },
  ],
});
panel({
  title: 'Accuracy per arm with 95% Wilson interval (per pod)',
  description:
    "From ground-truth feedback on the experiment's keys, as each pod's A/B report computes it. Intervals that overlap say nothing yet; read the difference panel.",
  targets: [[`classifier_ab_arm_accuracy_ratio{arm=~"$arm"}`, '{{arm}} {{signal}} {{instance}}']],
  unit: 'percentunit',
  w: 8,
});
panel({
  title: 'Candidate minus control: always-valid 95% interval',
  description:
    'Accuracy difference with a confidence sequence that stays valid however often it is looked at. Entirely above 0: candidate better; entirely below 0: candidate worse (pages).',
  targets: [[`classifier_ab_difference_ratio{arm=~"$arm"}`, '{{arm}} {{signal}} {{instance}}']],
  unit: 'percentunit',
  thresholds: [[0, 'red']],
});
panel({
  title: 'A/B p-value',
  description: 'Always-valid p-value of the difference. Below 0.05 the report gives a verdict.',
  targets: [[`classifier_ab_p_value{signal="accuracy", arm=~"$arm"}`, '{{arm}} {{instance}}']],
  unit: 'none',
  min: 0,
  max: 1,
  thresholds: [[0.05, 'red']],
});
panel({
  title: 'Labelled samples vs needed',
  description:
    'Labels received per arm, and the labels per arm still needed to settle the difference observed so far. When the first line crosses the second the test can decide.',
  targets: [
    [`sum by (arm) (classifier_ab_arm_labelled{arm=~"$arm"})`, 'labelled {{arm}}'],
    [`max by (arm) (classifier_ab_labels_needed{arm=~"$arm"})`, 'needed {{arm}}'],
  ],
  unit: 'short',
});
panel({
  title: 'Accuracy per model and arm, fleet (1 h)',
  description: 'Correct over labelled feedback in the last hour, summed over pods.',
  targets: [[`model_arm:classifier_accuracy:ratio_1h{${SEL}}`, '{{model}} {{arm}}']],
  unit: 'percentunit',
});
endRow();

// ---- confidence and drift --------------------------------------------------
row('Confidence and drift');
panel({
  type: 'heatmap',
  title: 'Confidence distribution over time',
  description:
    'Calibrated top-1 confidence of every answer. Mass moving down from the top rows means the models see images unlike their training data.',
  targets: [[`sum by (le) (increase(classifier_confidence_bucket{${SEL}}[$__rate_interval]))`, '{{le}}']],
  unit: 'short',
  options: { calculate: false, yAxis: { unit: 'percentunit' }, cellGap: 1, color: { scheme: 'Oranges', mode: 'scheme' } },
});
panel({
  title: 'Estimated vs observed accuracy (1 h)',
  description:
    'Estimated: the mean calibrated confidence, known at once. Observed: from feedback, known later. Estimated falling first is the early warning; observed far below estimated means the model is confidently wrong (as under heavy noise).',
  targets: [
    [`model_arm:classifier_confidence:mean_1h{${SEL}}`, 'estimated {{model}} {{arm}}'],
    [`model_arm:classifier_accuracy:ratio_1h{${SEL}}`, 'observed {{model}} {{arm}}'],
  ],
  unit: 'percentunit',
});
panel({
  title: 'Drift: confidence PSI (per pod, 1 h)',
  description:
    'Population stability index of the confidence deciles against the validation reference. Above 0.2 (the line) on at least 500 predictions flags drift.',
  targets: [[`classifier_drift_score{signal="psi", window="1h", model=~"$model"}`, '{{model}} {{instance}}']],
  unit: 'none',
  min: 0,
  thresholds: [[0.2, 'red']],
});
panel({
  title: 'Drift: test p-values (per pod, 1 h)',
  description:
    'Kolmogorov-Smirnov test of the confidence distribution and chi-square test of the class mix against the reference. Below 0.01 (the line) flags drift.',
  targets: [[`classifier_drift_p_value{window="1h", model=~"$model"}`, '{{model}} {{signal}} {{instance}}']],
  extra: {
    fieldConfig: {
      defaults: {
        unit: 'none',
        min: 0,
        max: 1,
        custom: { scaleDistribution: { type: 'log', log: 10 }, thresholdsStyle: { mode: 'dashed' } },
        thresholds: {
          mode: 'absolute',
          steps: [
            { color: 'red', value: null },
            { color: 'green', value: 0.01 },
          ],
        },
      },
      overrides: [],
    },
  },
});
panel({
  title: 'Fleet drift: KS distance vs its 1% critical value',
  description:
    "Largest gap between the fleet's confidence CDF (last hour, all pods) and the reference CDF, at the histogram's bounds; it crosses 1.63/sqrt(n) when drift is significant at 1%.",
  targets: [
    [`model:classifier_confidence_ks:max_gap_1h{model=~"$model"}`, 'KS {{model}}'],
    [`1.63 / sqrt(model:classifier_predictions:increase1h{model=~"$model"})`, 'critical {{model}}'],
  ],
  unit: 'none',
  min: 0,
});
panel({
  type: 'stat',
  title: 'Drift flagged (per pod)',
  description:
    '1 where a pod judges drift over the last hour (a threshold crossed on at least 500 predictions). GET /v1/ab on that pod says which test and by how much.',
  targets: [[`max by (model) (classifier_drift_detected{window="1h", model=~"$model"})`, '{{model}}']],
  unit: 'none',
  mappings: [{ type: 'value', options: { 0: { text: 'no drift', color: 'green' }, 1: { text: 'DRIFT', color: 'red' } } }],
});
panel({
  type: 'barchart',
  title: 'Class mix: live vs reference (1 h)',
  description:
    'Share of each predicted class in the last hour against the validation reference. A new season or a broken upload pipeline shows here first.',
  targets: [
    [`model_label:classifier_predictions:share_1h{model=~"$model"}`, 'live {{model}} {{label}}'],
    [`max by (model, label) (classifier_reference_class_share{model=~"$model"})`, 'reference {{model}} {{label}}'],
  ],
  unit: 'percentunit',
  options: { xField: 'label', orientation: 'horizontal' },
  extra: { transformations: [{ id: 'reduce', options: { reducers: ['lastNotNull'] } }] },
});
panel({
  title: 'Class mix distance (1 h)',
  description:
    'Total variation distance between the live and the reference class mix. Above 0.15 on at least 500 predictions opens a ticket.',
  targets: [[`model:classifier_class_mix:tv_distance_1h{model=~"$model"}`, '{{model}}']],
  unit: 'none',
  min: 0,
  thresholds: [[0.15, 'red']],
});
endRow();

// ---- feedback ------------------------------------------------------------------
row('Feedback');
panel({
  title: 'Feedback coverage (1 h)',
  description:
    'Share of answers that received a ground-truth label. Accuracy and the A/B test can only be as fresh as this; a fall to zero usually means the labelling job stopped.',
  targets: [[`model_arm:classifier_feedback_coverage:ratio_1h{${SEL}}`, '{{model}} {{arm}}']],
  unit: 'percentunit',
  min: 0,
});
panel({
  title: 'Feedback by outcome',
  description:
    'Labels counted as correct or incorrect, labels on predictions answered without a label (abstained: not in accuracy), and duplicates answered but not counted again.',
  targets: [[`sum by (outcome) (rate(classifier_feedback_total{${SEL}}[$__rate_interval]))`, '{{outcome}}']],
  unit: 'reqps',
});
panel({
  title: 'Feedback refused by reason',
  description:
    'Prediction ids that were malformed, tampered with, expired, or labels that are not a class. Tampered above zero deserves a look at who sends it.',
  targets: [['sum by (outcome) (rate(classifier_feedback_rejected_total[$__rate_interval]))', '{{outcome}}']],
  unit: 'reqps',
});
endRow();

// ---- out-of-distribution inputs and abstentions ------------------------------
row('Out-of-distribution inputs and abstentions');
panel({
  title: 'OOD flagged rate per model and arm vs expected (30 min)',
  description:
    "Share of scored predictions whose input was flagged out-of-distribution over the last 30 minutes (all pods), against the share the model's threshold flags on in-distribution images by design (expected) and 3 times that, where ClassifierOodFlaggedRateHigh fires (with at least 500 predictions). One arm apart from the others points at the clients routed to it or at its model.",
  targets: [
    [`model_arm:classifier_ood_flagged:ratio_rate30m{${SEL}}`, 'flagged {{model}} {{arm}}'],
    [`model:classifier_ood_expected_flag:ratio{model=~"$model"}`, 'expected {{model}}'],
    [`3 * model:classifier_ood_expected_flag:ratio{model=~"$model"}`, 'alert above {{model}}'],
  ],
  unit: 'percentunit',
  min: 0,
});
panel({
  type: 'heatmap',
  title: 'OOD score distribution over time',
  description:
    'Out-of-distribution score of every prediction (standardized scale; the fitted thresholds sit near 3.5). In-distribution traffic keeps most of the mass below 3; a new band higher up is a new kind of input (blank, inverted or noisy images, screenshots, non-garments score far above).',
  targets: [[`sum by (le) (increase(classifier_ood_score_bucket{${SEL}}[$__rate_interval]))`, '{{le}}']],
  unit: 'short',
  options: { calculate: false, yAxis: { unit: 'none' }, cellGap: 1, color: { scheme: 'Purples', mode: 'scheme' } },
});
panel({
  title: 'OOD score p50 / p95 / p99 by model',
  description:
    "Quantiles of the out-of-distribution score from its histogram, all pods. On in-distribution traffic the p95 sits near the model's threshold (about 5% flagged by design); p50 rising means the bulk of the traffic changed, p99 alone a minority of odd uploads.",
  targets: [
    [`histogram_quantile(0.5, sum by (model, le) (rate(classifier_ood_score_bucket{${SEL}}[$__rate_interval])))`, 'p50 {{model}}'],
    [`histogram_quantile(0.95, sum by (model, le) (rate(classifier_ood_score_bucket{${SEL}}[$__rate_interval])))`, 'p95 {{model}}'],
    [`histogram_quantile(0.99, sum by (model, le) (rate(classifier_ood_score_bucket{${SEL}}[$__rate_interval])))`, 'p99 {{model}}'],
  ],
  unit: 'none',
});
panel({
  title: 'Abstention rate by reason',
  description:
    'Share of predictions answered without a label (abstained), by reason: out-of-distribution (the input was flagged) or low-confidence (top-1 under ABSTAIN_MIN_CONFIDENCE). Abstained predictions stay in the predictions, confidence and drift figures (they describe the inputs) and are left out of accuracy. Zero unless the server policy (ABSTAIN) or the request asks for abstention.',
  targets: [
    [
      `sum by (model, arm, reason) (rate(classifier_abstentions_total{${SEL}}[$__rate_interval])) / on (model, arm) group_left () sum by (model, arm) (rate(classifier_predictions_total{${SEL}}[$__rate_interval]))`,
      '{{reason}} {{model}} {{arm}}',
    ],
  ],
  unit: 'percentunit',
  min: 0,
  w: 12,
});
panel({
  title: 'OOD flagged and abstained per second by model and arm',
  description:
    'Flagged inputs and abstentions (all reasons) per second, all pods: how many requests a rising flagged rate stands for. A handful of odd uploads from one client reads as a few a minute; a broken client or pipeline as a share of all traffic.',
  targets: [
    [`sum by (model, arm) (rate(classifier_ood_flagged_total{${SEL}}[$__rate_interval]))`, 'flagged {{model}} {{arm}}'],
    [`sum by (model, arm) (rate(classifier_abstentions_total{${SEL}}[$__rate_interval]))`, 'abstained {{model}} {{arm}}'],
  ],
  unit: 'reqps',
  min: 0,
  w: 12,
});
endRow();

// ---- payload log -----------------------------------------------------------------
row('Payload log');
panel({
  title: 'Payload log: records sent and dropped per second',
  description:
    'Predictions handed to each payload-log sink (http: PAYLOAD_LOG_URL, file: PAYLOAD_LOG_FILE), all pods, by outcome: sent, or dropped for queue_full, sink_error, timeout or shutdown. Drops other than at shutdown for 15 minutes open a ticket (ClassifierPayloadLogDropping). Empty when payload logging is off.',
  targets: [['sum by (sink, outcome) (rate(classifier_payload_log_records_total[$__rate_interval]))', '{{sink}} {{outcome}}']],
  unit: 'reqps',
  min: 0,
  w: 12,
});
panel({
  title: 'Payload log: queue depth per pod',
  description:
    "Records waiting or being written, per sink and pod. Each sink's queue holds PAYLOAD_LOG_QUEUE records (1000 by default); a depth that stays near it means the sink cannot keep up and queue_full drops follow.",
  targets: [['classifier_payload_log_queue_depth', '{{sink}} {{instance}}']],
  unit: 'short',
  min: 0,
  w: 12,
});
endRow();

/** A multi-value variable over a label's values, "All" matching everything. */
function labelVariable(name, label, series) {
  const query = `label_values(${series}, ${name})`;
  return {
    name,
    label,
    type: 'query',
    datasource: DS,
    query: { query, refId: name },
    definition: query,
    multi: true,
    includeAll: true,
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    refresh: 2,
    sort: 1,
  };
}

const dashboard = {
  __inputs: [
    {
      name: 'DS_PROMETHEUS',
      label: 'Prometheus',
      description: 'The Prometheus that scrapes product-classifier',
      type: 'datasource',
      pluginId: 'prometheus',
      pluginName: 'Prometheus',
    },
  ],
  __requires: [
    { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
    { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
  ],
  title: 'product-classifier',
  uid: 'product-classifier',
  description:
    'Service health, the A/B test, confidence drift, feedback, out-of-distribution inputs, abstentions and the payload log of product-classifier. Made by scripts/grafana-dashboard.mjs.',
  tags: ['product-classifier', 'ml', 'ab-test'],
  timezone: 'browser',
  schemaVersion: 39,
  version: 1,
  editable: true,
  graphTooltip: 1,
  refresh: '30s',
  time: { from: 'now-3h', to: 'now' },
  templating: {
    list: [
      { name: 'datasource', label: 'Prometheus', type: 'datasource', query: 'prometheus', current: {}, hide: 0 },
      labelVariable('model', 'Model', 'classifier_model_info'),
      labelVariable('arm', 'Arm', 'classifier_arm_weight_ratio'),
    ],
  },
  annotations: {
    list: [
      {
        name: 'Alerts',
        datasource: DS,
        enable: true,
        iconColor: 'red',
        expr: 'ALERTS{alertstate="firing", alertname=~"Classifier.*"}',
        titleFormat: '{{alertname}}',
        textFormat: '{{model}} {{arm}}',
      },
    ],
  },
  panels,
};

const text = `${JSON.stringify(dashboard, null, 2)}\n`;
if (process.argv.includes('--check')) {
  const current = readFileSync(OUT, 'utf8');
  if (current !== text) {
    process.stderr.write(`${path.relative(ROOT, OUT)} is out of date: run node scripts/grafana-dashboard.mjs\n`);
    process.exit(1);
  }
} else {
  writeFileSync(OUT, text);
  process.stdout.write(`wrote ${path.relative(ROOT, OUT)} (${panels.length} panels)\n`);
}
