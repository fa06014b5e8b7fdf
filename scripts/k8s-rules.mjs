#!/usr/bin/env node
// Writes k8s/base/prometheusrule.yaml, a prometheus-operator PrometheusRule
// whose spec.groups are exactly the groups of monitoring/prometheus/rules.yml
// (the standard Prometheus rules file that promtool checks), so the two can
// never drift apart. test/unit/k8s-manifests.test.ts checks they agree.
//
//   npm run k8s:rules                         # regenerate
//   node scripts/k8s-rules.mjs --check        # exit 1 if out of date (CI)
//   node scripts/k8s-rules.mjs [--check] [rules.yml [prometheusrule.yaml]]
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const check = args.includes('--check');
const [rulesArg, outArg] = args.filter((a) => a !== '--check');
const rulesFile = path.resolve(rulesArg ?? path.join(ROOT, 'monitoring', 'prometheus', 'rules.yml'));
const outFile = path.resolve(outArg ?? path.join(ROOT, 'k8s', 'base', 'prometheusrule.yaml'));

function fail(message) {
  process.stderr.write(`k8s-rules: ${message}\n`);
  process.exit(1);
}

if (!existsSync(rulesFile)) fail(`${rulesFile} does not exist`);
let rules;
try {
  rules = YAML.parse(readFileSync(rulesFile, 'utf8'));
} catch (err) {
  fail(`${rulesFile} is not valid YAML: ${err.message}`);
}
if (!rules || !Array.isArray(rules.groups)) fail(`${rulesFile} has no "groups" list`);
for (const [i, g] of rules.groups.entries()) {
  if (!g || typeof g.name !== 'string' || !Array.isArray(g.rules)) fail(`${rulesFile}: group ${i} needs a name and a rules list`);
}

const header = [
  '# GENERATED FILE, do not edit: edit monitoring/prometheus/rules.yml and run',
  '#   npm run k8s:rules        (node scripts/k8s-rules.mjs)',
  '# spec.groups are exactly the groups of monitoring/prometheus/rules.yml;',
  '# test/unit/k8s-manifests.test.ts fails when the two differ.',
  '# If your Prometheus selects rules by label (kube-prometheus-stack:',
  '# `release: <release name>`), add it in an overlay.',
  '',
].join('\n');

const resource = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: {
    name: 'product-classifier',
    labels: { 'app.kubernetes.io/name': 'product-classifier' },
  },
  spec: { groups: rules.groups },
};
// lineWidth 0: never fold long PromQL expressions; aliasDuplicateObjects off:
// no anchors in the output even where the source shares objects.
const text = header + YAML.stringify(resource, { lineWidth: 0, aliasDuplicateObjects: false });

const rel = (p) => path.relative(process.cwd(), p) || p;
if (check) {
  const current = existsSync(outFile) ? readFileSync(outFile, 'utf8') : '';
  if (current !== text) fail(`${rel(outFile)} is out of date with ${rel(rulesFile)}: run npm run k8s:rules`);
  process.stdout.write(`${rel(outFile)} is up to date (${rules.groups.length} groups)\n`);
} else {
  writeFileSync(outFile, text);
  process.stdout.write(
    `wrote ${rel(outFile)}: ${rules.groups.length} groups, ${rules.groups.reduce((n, g) => n + g.rules.length, 0)} rules from ${rel(rulesFile)}\n`,
  );
}
