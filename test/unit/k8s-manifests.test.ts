/**
 * The Kubernetes manifests in k8s/: every object is validated against the
 * Kubernetes schemas (kubernetes-models) and the prometheus-operator CRDs
 * (@kubernetes-models/prometheus-operator), and the properties the platform
 * relies on are asserted: probes, non-root and read-only root, the shutdown
 * arithmetic, the routing ConfigMap mount, secrets, selectors and ports, the
 * PrometheusRule against monitoring/prometheus/rules.yml. When kustomize (or
 * kubectl) is on PATH, the rendered base and overlay get the same checks.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { loadConfig } from '../../src/config';

// dist/test/unit -> repository root
const ROOT = path.resolve(__dirname, '..', '..', '..');
const BASE = path.join(ROOT, 'k8s', 'base');
const OVERLAY = path.join(ROOT, 'k8s', 'overlays', 'production');
const RULES_FILE = path.join(ROOT, 'monitoring', 'prometheus', 'rules.yml');
const MODELS_ROUTING = path.join(ROOT, 'models', 'routing.json');

// kubernetes-models is ESM-only: a real dynamic import that tsc (commonjs)
// does not rewrite into require().
const importEsm = new Function('s', 'return import(s)') as (s: string) => Promise<any>;

type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: any };
  [k: string]: any;
};

// ---- loading -------------------------------------------------------------------

function readYamlDocs(file: string): K8sObject[] {
  const docs = YAML.parseAllDocuments(readFileSync(file, 'utf8'));
  const out: K8sObject[] = [];
  for (const doc of docs) {
    assert.equal(doc.errors.length, 0, `${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

function readKustomization(dir: string): any {
  const k = YAML.parse(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8'));
  assert.equal(k.apiVersion, 'kustomize.config.k8s.io/v1beta1');
  assert.equal(k.kind, 'Kustomization');
  return k;
}

/** The objects of the files a kustomization lists (directories, i.e. bases, are left out). */
function listedObjects(dir: string): K8sObject[] {
  const k = readKustomization(dir);
  const objects: K8sObject[] = [];
  for (const res of k.resources ?? []) {
    const p = path.join(dir, res);
    assert.ok(existsSync(p), `${dir}/kustomization.yaml lists ${res}, which does not exist`);
    if (statSync(p).isDirectory()) continue;
    objects.push(...readYamlDocs(p));
  }
  return objects;
}

/** The ConfigMaps a kustomization's configMapGenerator makes (as kustomize would, before any hash suffix). */
function generatedConfigMaps(dir: string): K8sObject[] {
  const k = readKustomization(dir);
  return (k.configMapGenerator ?? []).map((g: any) => {
    const data: Record<string, string> = {};
    for (const entry of g.files ?? []) {
      const [key, file] = String(entry).includes('=') ? String(entry).split('=', 2) : [path.basename(entry), entry];
      data[key] = readFileSync(path.join(dir, file), 'utf8');
    }
    for (const entry of g.literals ?? []) {
      const [key, ...rest] = String(entry).split('=');
      data[key] = rest.join('=');
    }
    return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name, labels: g.options?.labels }, data };
  });
}

/** `kustomize build` or `kubectl kustomize`, whichever is on PATH; undefined if neither. */
function kustomizeCommand(): string[] | undefined {
  const probes: [string[], string[]][] = [
    [['kustomize', 'build'], ['version']],
    [
      ['kubectl', 'kustomize'],
      ['version', '--client'],
    ],
  ];
  for (const [cmd, versionArgs] of probes) {
    const r = spawnSync(cmd[0], versionArgs, { encoding: 'utf8', timeout: 60_000 });
    if (!r.error && r.status === 0) return cmd;
  }
  return undefined;
}

function render(cmd: string[], dir: string): K8sObject[] {
  const r = spawnSync(cmd[0], [...cmd.slice(1), dir], { encoding: 'utf8', timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  assert.ifError(r.error);
  assert.equal(r.status, 0, `${cmd.join(' ')} ${dir} failed:\n${r.stderr}`);
  return YAML.parseAllDocuments(r.stdout)
    .map((d) => d.toJS())
    .filter((v) => v !== null && v !== undefined);
}

// ---- schema validation -----------------------------------------------------------

async function modelClass(apiVersion: string, kind: string): Promise<any> {
  // Core group objects (apiVersion v1) live in kubernetes-models/v1, others in
  // kubernetes-models/<group>/<version>; prometheus-operator's in its package.
  const mod = apiVersion.startsWith('monitoring.coreos.com/')
    ? `@kubernetes-models/prometheus-operator/${apiVersion}`
    : `kubernetes-models/${apiVersion}`;
  let m: any;
  try {
    m = await importEsm(mod);
  } catch (err) {
    throw new Error(`no schema module for apiVersion ${apiVersion} (${mod}): ${(err as Error).message}`, { cause: err });
  }
  const cls = m[kind];
  if (typeof cls !== 'function') throw new Error(`no schema for ${kind} in ${apiVersion}`);
  return cls;
}

/** Constructs the model class of the object's kind and validates it; throws on any schema violation. */
async function validateObject(obj: K8sObject): Promise<void> {
  const Model = await modelClass(obj.apiVersion, obj.kind);
  const model = new Model(structuredClone(obj));
  assert.equal(model.apiVersion, obj.apiVersion, `${obj.kind}/${obj.metadata?.name}: apiVersion`);
  assert.equal(model.kind, obj.kind);
  try {
    model.validate();
  } catch (err) {
    throw new Error(`${obj.kind}/${obj.metadata?.name} fails the ${obj.apiVersion} schema: ${(err as Error).message}`, { cause: err });
  }
}

async function validateAll(objects: K8sObject[]): Promise<void> {
  for (const obj of objects) await validateObject(obj);
}

// ---- invariants the platform relies on ---------------------------------------------

function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  assert.equal(found.length, 1, `expected one ${kind}${name ? `/${name}` : ''}, found ${found.length}`);
  return found[0];
}

function selects(selector: any, labels: Record<string, string> = {}): boolean {
  assert.ok(selector && selector.matchLabels && Object.keys(selector.matchLabels).length > 0, 'selector needs matchLabels');
  assert.equal(selector.matchExpressions, undefined, 'these manifests select by matchLabels only');
  return Object.entries(selector.matchLabels).every(([k, v]) => labels[k] === v);
}

/** "500m" -> 0.5, "2" -> 2 */
function cpuCores(q: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(String(q));
  assert.ok(m, `CPU quantity ${q}`);
  return Number(m[1]) / (m[2] ? 1000 : 1);
}

function preStopSleepMs(container: any): number {
  const preStop = container.lifecycle?.preStop;
  assert.ok(preStop, 'the container needs a preStop hook (sleep) so endpoints are removed before draining');
  if (preStop.sleep) return Number(preStop.sleep.seconds) * 1000;
  const cmd: string[] = preStop.exec?.command ?? [];
  assert.ok(/(^|\/)sleep$/.test(cmd[0] ?? '') && cmd.length === 2, `preStop must be a plain sleep, got ${JSON.stringify(preStop)}`);
  const s = Number(cmd[1]);
  assert.ok(Number.isFinite(s) && s > 0, `preStop sleep ${cmd[1]}`);
  return s * 1000;
}

interface Facts {
  deployment: K8sObject;
  podLabels: Record<string, string>;
  container: any;
  env: Record<string, any>;
  containerPorts: Map<string, number>;
}

function deploymentFacts(objects: K8sObject[]): Facts {
  const deployment = one(objects, 'Deployment');
  const pod = deployment.spec.template;
  const containers = pod.spec.containers;
  assert.equal(containers.length, 1, 'one container');
  const container = containers[0];
  const env: Record<string, any> = {};
  for (const e of container.env ?? []) {
    assert.equal(env[e.name], undefined, `env ${e.name} set twice`);
    env[e.name] = e;
  }
  const containerPorts = new Map<string, number>((container.ports ?? []).map((p: any) => [p.name, p.containerPort]));
  return { deployment, podLabels: pod.metadata.labels, container, env, containerPorts };
}

/** The service's own configuration loader accepts the Deployment's environment (secrets filled in). */
function serviceConfig(f: Facts) {
  const env: Record<string, string> = {};
  for (const [name, e] of Object.entries(f.env)) env[name] = e.valueFrom?.secretKeyRef ? 'x'.repeat(32) : String(e.value);
  return loadConfig(env);
}

function resolvePort(f: Facts, port: string | number): number {
  if (typeof port === 'number') return port;
  const n = f.containerPorts.get(port);
  assert.ok(n !== undefined, `no container port named ${port}`);
  return n;
}

function checkDeployment(objects: K8sObject[]): void {
  const f = deploymentFacts(objects);
  const { deployment: d, container: c } = f;
  const podSpec = d.spec.template.spec;
  const config = serviceConfig(f);

  assert.ok(selects(d.spec.selector, f.podLabels), 'the Deployment selector matches its pod labels');
  assert.equal(d.spec.replicas, undefined, 'no spec.replicas: the HPA owns the replica count (apply would reset it)');

  // ports: the container ports are the ports the service listens on
  assert.deepEqual(
    Object.fromEntries(f.containerPorts),
    { http: config.httpPort, grpc: config.grpcPort, metrics: config.metricsPort },
    'container ports http/grpc/metrics match HTTP_PORT/GRPC_PORT/METRICS_PORT',
  );

  // probes
  assert.equal(c.livenessProbe?.httpGet?.path, '/healthz', 'liveness on /healthz');
  assert.equal(c.readinessProbe?.httpGet?.path, '/readyz', 'readiness on /readyz');
  assert.equal(c.startupProbe?.httpGet?.path, '/healthz', 'startup probe on /healthz');
  for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
    assert.equal(resolvePort(f, probe.httpGet.port), config.httpPort, 'probes hit the HTTP port');
  }

  // security: non-root uid 10001, read-only root, no privilege escalation, no capabilities
  const psc = podSpec.securityContext ?? {};
  const csc = c.securityContext ?? {};
  assert.equal(csc.runAsNonRoot ?? psc.runAsNonRoot, true, 'runAsNonRoot');
  assert.equal(csc.runAsUser ?? psc.runAsUser, 10001, 'runs as uid 10001 (the image user)');
  assert.equal(csc.readOnlyRootFilesystem, true, 'readOnlyRootFilesystem');
  assert.equal(csc.allowPrivilegeEscalation, false, 'allowPrivilegeEscalation false');
  assert.ok(csc.capabilities?.drop?.includes('ALL'), 'drops ALL capabilities');
  assert.equal(csc.capabilities?.add, undefined, 'adds no capability');
  assert.equal((csc.seccompProfile ?? psc.seccompProfile)?.type, 'RuntimeDefault', 'seccomp RuntimeDefault');
  assert.notEqual(csc.privileged, true);

  // a writable /tmp on the read-only root
  const tmpMount = c.volumeMounts.find((m: any) => m.mountPath === '/tmp');
  assert.ok(tmpMount, '/tmp is mounted');
  assert.ok(podSpec.volumes.find((v: any) => v.name === tmpMount.name)?.emptyDir, '/tmp is an emptyDir');

  // resources, and ORT threads matching the CPU limit
  const { requests, limits } = c.resources ?? {};
  assert.ok(requests?.cpu && requests?.memory && limits?.cpu && limits?.memory, 'CPU and memory requests and limits');
  assert.ok(cpuCores(limits.cpu) >= cpuCores(requests.cpu));
  assert.equal(config.ortThreads, Math.max(1, Math.floor(cpuCores(limits.cpu))), 'ORT_THREADS matches the CPU limit in whole cores');

  // spread across nodes
  const spread = (podSpec.topologySpreadConstraints ?? []).find((t: any) => t.topologyKey === 'kubernetes.io/hostname');
  const antiAffinity = podSpec.affinity?.podAntiAffinity;
  assert.ok((spread && selects(spread.labelSelector, f.podLabels)) || antiAffinity, 'replicas spread across nodes');
}

function checkShutdown(objects: K8sObject[]): void {
  const f = deploymentFacts(objects);
  const config = serviceConfig(f);
  const grace = f.deployment.spec.template.spec.terminationGracePeriodSeconds;
  assert.equal(typeof grace, 'number', 'terminationGracePeriodSeconds is set');
  const preStop = preStopSleepMs(f.container);
  assert.ok(preStop >= 1000, 'a preStop sleep of at least a second');
  assert.ok(
    grace * 1000 > config.drainTimeoutMs + preStop,
    `terminationGracePeriodSeconds ${grace} s must exceed preStop ${preStop} ms + DRAIN_TIMEOUT_MS ${config.drainTimeoutMs} ms`,
  );
}

function checkRouting(objects: K8sObject[]): void {
  const f = deploymentFacts(objects);
  const config = serviceConfig(f);
  const podSpec = f.deployment.spec.template.spec;
  assert.ok(f.env.ROUTING_FILE?.value, 'ROUTING_FILE is set');
  const dir = path.posix.dirname(f.env.ROUTING_FILE.value);
  const key = path.posix.basename(f.env.ROUTING_FILE.value);
  assert.equal(config.routingFile, f.env.ROUTING_FILE.value, 'the service reads ROUTING_FILE as given');
  const mount = f.container.volumeMounts.find((m: any) => m.mountPath === dir);
  assert.ok(mount, `a volume is mounted at ${dir}, the directory of ROUTING_FILE`);
  assert.equal(mount.subPath, undefined, 'the routing ConfigMap is mounted as a directory: subPath mounts never see ConfigMap updates');
  assert.equal(mount.subPathExpr, undefined);
  const volume = podSpec.volumes.find((v: any) => v.name === mount.name);
  assert.ok(volume?.configMap?.name, `the volume at ${dir} is a ConfigMap`);
  assert.ok(!volume.configMap.items || volume.configMap.items.some((i: any) => i.path === key), `the ConfigMap volume projects ${key}`);
  const cm = one(objects, 'ConfigMap', volume.configMap.name);
  assert.ok(typeof cm.data?.[key] === 'string', `ConfigMap ${cm.metadata.name} has the key ${key}`);
  assert.equal(cm.data[key], readFileSync(MODELS_ROUTING, 'utf8'), `ConfigMap ${key} is models/routing.json`);
  assert.ok(
    !path.posix.normalize(dir).startsWith(path.posix.normalize(config.modelDir)),
    'the ConfigMap is not mounted over MODEL_DIR (it would hide the models)',
  );
}

function checkSecrets(objects: K8sObject[]): { secret: string; receiptKey: string; adminKey: string } {
  const f = deploymentFacts(objects);
  assert.equal(objects.filter((o) => o.kind === 'Secret').length, 0, 'no Secret is committed');
  const receipt = f.env.RECEIPT_SECRET?.valueFrom?.secretKeyRef;
  const admin = f.env.ADMIN_TOKEN?.valueFrom?.secretKeyRef;
  assert.ok(receipt?.name && receipt?.key, 'RECEIPT_SECRET comes from a Secret');
  assert.notEqual(receipt.optional, true, 'RECEIPT_SECRET is required: replicas must share it for feedback to work on any replica');
  assert.ok(admin?.name && admin?.key, 'ADMIN_TOKEN comes from a Secret');
  assert.equal(admin.optional, true, 'ADMIN_TOKEN is optional (admin routes off without it)');
  assert.equal(admin.name, receipt.name, 'one Secret holds both');
  assert.equal(f.env.RECEIPT_SECRET.value, undefined);
  assert.equal(f.env.ADMIN_TOKEN.value, undefined);
  return { secret: receipt.name, receiptKey: receipt.key, adminKey: admin.key };
}

function checkServices(objects: K8sObject[]): void {
  const f = deploymentFacts(objects);
  const services = objects.filter((o) => o.kind === 'Service');
  const main = one(objects, 'Service', f.deployment.metadata.name);
  assert.ok([undefined, 'ClusterIP'].includes(main.spec.type), 'the Service is ClusterIP');
  assert.deepEqual(
    main.spec.ports.map((p: any) => p.name).sort(),
    ['grpc', 'http', 'metrics'],
    'the Service exposes http, grpc and metrics',
  );
  assert.equal(main.spec.ports.find((p: any) => p.name === 'grpc').appProtocol, 'grpc');
  for (const svc of services) {
    assert.ok(selects({ matchLabels: svc.spec.selector }, f.podLabels), `Service ${svc.metadata.name} selects the pods`);
    for (const p of svc.spec.ports) {
      assert.ok(f.containerPorts.has(p.name), `Service ${svc.metadata.name} port ${p.name} is a container port name`);
      const target = p.targetPort ?? p.port;
      assert.equal(
        resolvePort(f, target),
        f.containerPorts.get(p.name),
        `Service ${svc.metadata.name} port ${p.name} targets container port ${p.name}`,
      );
      assert.equal(p.port, f.containerPorts.get(p.name), `Service ${svc.metadata.name} port ${p.name} keeps the contract number`);
    }
  }
}

function checkMonitoring(objects: K8sObject[]): void {
  const sm = one(objects, 'ServiceMonitor');
  const services = objects.filter((o) => o.kind === 'Service' && (o.metadata.namespace ?? '') === (sm.metadata.namespace ?? ''));
  const selected = services.filter((s) => selects(sm.spec.selector, s.metadata.labels));
  assert.equal(
    selected.length,
    1,
    `the ServiceMonitor selects exactly one Service (selected: ${selected.map((s) => s.metadata.name).join(', ') || 'none'})`,
  );
  assert.equal(sm.spec.endpoints.length, 1);
  const ep = sm.spec.endpoints[0];
  assert.equal(ep.port, 'metrics');
  assert.ok(
    selected[0].spec.ports.some((p: any) => p.name === ep.port),
    `the selected Service has the port ${ep.port}`,
  );
  assert.equal(ep.interval, '15s');
  assert.equal(ep.path ?? '/metrics', '/metrics');
  // Other Services in front of the same pods must not expose the metrics port
  // (a second ServiceMonitor or a broader selector would scrape pods twice).
  const f = deploymentFacts(objects);
  for (const svc of services.filter((s) => s !== selected[0] && selects({ matchLabels: s.spec.selector }, f.podLabels))) {
    assert.ok(
      !svc.spec.ports.some((p: any) => resolvePort(f, p.targetPort ?? p.port) === f.containerPorts.get('metrics')),
      `Service ${svc.metadata.name} does not expose metrics`,
    );
  }
  one(objects, 'PrometheusRule');
}

function checkScaling(objects: K8sObject[]): void {
  const f = deploymentFacts(objects);
  const hpa = one(objects, 'HorizontalPodAutoscaler');
  assert.deepEqual(
    hpa.spec.scaleTargetRef,
    { apiVersion: 'apps/v1', kind: 'Deployment', name: f.deployment.metadata.name },
    'the HPA targets the Deployment',
  );
  assert.ok(hpa.spec.minReplicas >= 2, 'at least 2 replicas');
  assert.ok(hpa.spec.maxReplicas >= hpa.spec.minReplicas);
  assert.ok(
    hpa.spec.metrics.some((m: any) => m.type === 'Resource' && m.resource.name === 'cpu' && m.resource.target.type === 'Utilization'),
    'the HPA scales on CPU utilization',
  );
  assert.ok(hpa.spec.behavior?.scaleDown?.stabilizationWindowSeconds > 0, 'scale-down is stabilized');

  const pdb = one(objects, 'PodDisruptionBudget');
  assert.ok(selects(pdb.spec.selector, f.podLabels), 'the PDB selects the pods');
  assert.ok(pdb.spec.minAvailable !== undefined || pdb.spec.maxUnavailable !== undefined);
  if (pdb.spec.minAvailable !== undefined) assert.ok(pdb.spec.minAvailable < hpa.spec.minReplicas, 'the PDB leaves room for a drain');

  const np = one(objects, 'NetworkPolicy');
  assert.ok(selects(np.spec.podSelector, f.podLabels), 'the NetworkPolicy selects the pods');
  assert.deepEqual([...np.spec.policyTypes].sort(), ['Egress', 'Ingress']);
  const portsOf = (rule: any) => (rule.ports ?? []).map((p: any) => resolvePort(f, p.port));
  for (const rule of np.spec.ingress) for (const p of rule.ports ?? []) if (typeof p.port === 'string') resolvePort(f, p.port);
  const config = serviceConfig(f);
  for (const port of [config.httpPort, config.grpcPort, config.metricsPort]) {
    assert.ok(
      np.spec.ingress.some((r: any) => portsOf(r).includes(port)),
      `the NetworkPolicy admits port ${port}`,
    );
  }
  for (const rule of np.spec.ingress.filter((r: any) => portsOf(r).includes(config.metricsPort))) {
    assert.ok(rule.from?.length, 'metrics ingress names its sources');
    for (const peer of rule.from) {
      assert.ok(
        peer.namespaceSelector?.matchLabels && Object.keys(peer.namespaceSelector.matchLabels).length > 0,
        'metrics only from a named namespace',
      );
      assert.ok(peer.podSelector?.matchLabels, 'metrics only from Prometheus pods');
    }
  }
}

function checkAll(objects: K8sObject[]): void {
  checkDeployment(objects);
  checkShutdown(objects);
  checkRouting(objects);
  checkSecrets(objects);
  checkServices(objects);
  checkMonitoring(objects);
  checkScaling(objects);
}

/** The base as kustomize would build it (before hash suffixes and overlays). */
function baseObjects(): K8sObject[] {
  return [...listedObjects(BASE), ...generatedConfigMaps(BASE)];
}

function checkRulesEqual(objects: K8sObject[]): void {
  const rules = YAML.parse(readFileSync(RULES_FILE, 'utf8'));
  const pr = one(objects, 'PrometheusRule');
  assert.deepEqual(
    pr.spec.groups,
    rules.groups,
    'PrometheusRule spec.groups = monitoring/prometheus/rules.yml groups: run npm run k8s:rules',
  );
}

// ---- tests ----------------------------------------------------------------------------

describe('k8s manifests', () => {
  it('base: every listed resource and the generated ConfigMap pass the Kubernetes and prometheus-operator schemas', async () => {
    const objects = baseObjects();
    const kinds = objects.map((o) => o.kind).sort();
    for (const kind of [
      'ConfigMap',
      'Deployment',
      'HorizontalPodAutoscaler',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'PrometheusRule',
      'Service',
      'ServiceMonitor',
    ]) {
      assert.ok(kinds.includes(kind), `the base has a ${kind}`);
    }
    await validateAll(objects);
  });

  it('base: every manifest file in k8s/base is listed in its kustomization', () => {
    const listed = new Set(readKustomization(BASE).resources);
    const files = readdirSync(BASE).filter((n) => /\.ya?ml$/.test(n) && n !== 'kustomization.yaml');
    assert.deepEqual(
      files.filter((n) => !listed.has(n)),
      [],
    );
  });

  it('schema validation rejects broken objects', async () => {
    const d = structuredClone(one(baseObjects(), 'Deployment'));
    d.spec.template.spec.containers[0].ports[0].containerPort = '8080';
    await assert.rejects(validateObject(d), /containerPort must be integer/);

    const noContainers = structuredClone(one(baseObjects(), 'Deployment'));
    delete noContainers.spec.template.spec.containers;
    await assert.rejects(validateObject(noContainers), /containers/);

    const hpa = structuredClone(one(baseObjects(), 'HorizontalPodAutoscaler'));
    delete hpa.spec.scaleTargetRef;
    await assert.rejects(validateObject(hpa), /scaleTargetRef/);

    const sm = structuredClone(one(baseObjects(), 'ServiceMonitor'));
    sm.spec.endpoints = 'metrics';
    await assert.rejects(validateObject(sm), /endpoints/);

    const pr = structuredClone(one(baseObjects(), 'PrometheusRule'));
    pr.spec.groups = [{ rules: [] }];
    await assert.rejects(validateObject(pr), /name/);

    await assert.rejects(
      validateObject({ apiVersion: 'apps/v1', kind: 'Deploymnet', metadata: { name: 'x' } }),
      /no schema for Deploymnet/,
    );
  });

  it('deployment: probes, non-root, read-only root, /tmp, resources, spread', () => {
    checkDeployment(baseObjects());
  });

  it('deployment: terminationGracePeriodSeconds covers the preStop sleep plus DRAIN_TIMEOUT_MS', () => {
    checkShutdown(baseObjects());
  });

  it('routing: the ConfigMap is mounted as a directory, ROUTING_FILE points into it, updates apply in place', () => {
    const objects = baseObjects();
    checkRouting(objects);
    const gen = readKustomization(BASE).configMapGenerator.find((g: any) => g.name === 'product-classifier-routing');
    assert.equal(
      gen?.options?.disableNameSuffixHash,
      true,
      'a stable ConfigMap name: changes update it in place and hot-reload, not roll the pods',
    );
  });

  it('routing: k8s/base/routing.json is a byte-for-byte copy of models/routing.json', () => {
    assert.ok(
      readFileSync(path.join(BASE, 'routing.json')).equals(readFileSync(MODELS_ROUTING)),
      'k8s/base/routing.json differs from models/routing.json: cp models/routing.json k8s/base/routing.json',
    );
  });

  it('secrets: RECEIPT_SECRET required and ADMIN_TOKEN optional from one Secret that is not committed', () => {
    const s = checkSecrets(baseObjects());
    assert.deepEqual(
      s,
      { secret: 'product-classifier-secrets', receiptKey: 'receipt-secret', adminKey: 'admin-token' },
      'the names k8s/README.md documents',
    );
    for (const dir of [BASE, OVERLAY]) assert.equal(readKustomization(dir).secretGenerator, undefined, 'no secretGenerator');
  });

  it('services: ports match the container ports by name; both Services select the pods', () => {
    checkServices(baseObjects());
  });

  it('monitoring: the ServiceMonitor selects the Service and its metrics port', () => {
    checkMonitoring(baseObjects());
  });

  it('scaling and policy: HPA targets the Deployment, PDB and NetworkPolicy select the pods', () => {
    checkScaling(baseObjects());
  });

  it('PrometheusRule groups equal monitoring/prometheus/rules.yml', (t) => {
    if (!existsSync(RULES_FILE)) {
      t.skip('monitoring/prometheus/rules.yml does not exist yet; when it does, run npm run k8s:rules');
      return;
    }
    checkRulesEqual(baseObjects());
  });

  it('scripts/k8s-rules.mjs writes a PrometheusRule with the rules file groups', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pc-k8s-rules-'));
    try {
      const rules = path.join(dir, 'rules.yml');
      const out = path.join(dir, 'prometheusrule.yaml');
      writeFileSync(
        rules,
        [
          'groups:',
          '  - name: test.recording',
          '    interval: 30s',
          '    rules:',
          '      - record: classifier:requests:rate5m',
          '        expr: sum by (model) (rate(classifier_requests_total[5m]))',
          '  - name: test.alerts',
          '    rules:',
          '      - alert: TestAlert',
          '        expr: |',
          '          sum(rate(classifier_requests_total{code!="OK"}[5m]))',
          '          / sum(rate(classifier_requests_total[5m])) > 0.05',
          '        for: 10m',
          '        labels: { severity: warning }',
          '        annotations:',
          '          summary: "{{ $labels.model }}: a long summary line well beyond eighty characters that must not be folded"',
          '',
        ].join('\n'),
      );
      const script = path.join(ROOT, 'scripts', 'k8s-rules.mjs');
      const gen = spawnSync(process.execPath, [script, rules, out], { encoding: 'utf8' });
      assert.equal(gen.status, 0, gen.stderr);
      const text = readFileSync(out, 'utf8');
      assert.match(text, /^# GENERATED FILE.*\n#\s+npm run k8s:rules/);
      const [pr] = readYamlDocs(out);
      assert.deepEqual(pr.spec.groups, YAML.parse(readFileSync(rules, 'utf8')).groups);
      await validateObject(pr);
      assert.equal(spawnSync(process.execPath, [script, '--check', rules, out]).status, 0, '--check passes when up to date');
      writeFileSync(out, text + '# edited\n');
      assert.equal(spawnSync(process.execPath, [script, '--check', rules, out]).status, 1, '--check fails when out of date');
      assert.equal(spawnSync(process.execPath, [script, path.join(dir, 'missing.yml'), out]).status, 1, 'a missing rules file fails');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('overlay: its own resources validate, it builds on the base, sets a namespace and an image', async () => {
    const k = readKustomization(OVERLAY);
    assert.ok(k.resources.includes('../../base'), 'the overlay builds on the base');
    assert.ok(k.namespace, 'the overlay sets a namespace');
    assert.ok(
      k.images?.some((i: any) => i.name === 'product-classifier' && i.newTag),
      'the overlay pins the image',
    );
    const own = listedObjects(OVERLAY);
    await validateAll(own);
    assert.equal(own.filter((o) => o.kind === 'Secret').length, 0, 'no Secret is committed');
  });

  it('rendered with kustomize: base and overlay validate and keep every invariant', async (t) => {
    const cmd = kustomizeCommand();
    if (!cmd) {
      t.skip('kustomize not installed');
      return;
    }
    const base = render(cmd, BASE);
    await validateAll(base);
    checkAll(base);
    if (existsSync(RULES_FILE)) checkRulesEqual(base);

    const overlay = render(cmd, OVERLAY);
    await validateAll(overlay);
    checkAll(overlay);
    if (existsSync(RULES_FILE)) checkRulesEqual(overlay);
    const k = readKustomization(OVERLAY);
    for (const o of overlay.filter((x) => x.kind !== 'Namespace')) {
      assert.equal(o.metadata.namespace, k.namespace, `${o.kind}/${o.metadata.name} is in the overlay's namespace`);
    }
    const image = k.images.find((i: any) => i.name === 'product-classifier');
    assert.equal(deploymentFacts(overlay).container.image, `${image.newName ?? image.name}:${image.newTag}`);
    assert.equal(one(overlay, 'ConfigMap').metadata.name, 'product-classifier-routing', 'no hash suffix on the routing ConfigMap');
    assert.deepEqual(
      base.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
      overlay
        .filter((o) => o.kind !== 'Namespace')
        .map((o) => `${o.kind}/${o.metadata.name}`)
        .sort(),
      'the overlay renders every object of the base',
    );
  });
});
