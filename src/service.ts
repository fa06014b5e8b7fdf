/**
 * Builds the whole service from a frozen Config: repository, runtimes,
 * preprocessor, selector, DataPlane and transports. No module-level state,
 * so tests can run several instances side by side. main.ts only adds
 * process concerns (signals, exit codes).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { type Config, precisionFor } from './config';
import type { DrainStats } from './core/admission';
import { Admission } from './core/admission';
import { Classifier } from './core/classifier';
import { DataPlane } from './core/dataplane';
import type { AppLogger } from './core/logger';
import { ShadowTraffic } from './core/shadow';
import { FeedbackService } from './feedback/feedback';
import { ReceiptSigner, SeenIds } from './feedback/receipts';
import { ModelBatchers } from './models/batchers';
import { ModelRepository, type ReloadReport } from './models/repository';
import { OnnxRuntimeFactory } from './models/onnx-runtime';
import type { RuntimeFactory } from './models/runtime';
import { TfjsEnvironment, TfjsRuntimeFactory } from './models/tfjs-runtime';
import { ServiceMetrics } from './monitoring/metrics';
import { Monitor } from './monitoring/monitor';
import { Preprocessor } from './preprocess/preprocessor';
import { RoutingSource } from './routing/routing-source';
import { RequestPipeline } from './pipeline/pipeline';
import { createGrpcTransport, type GrpcTransport } from './transport/grpc/server';
import { createPayloadLogger } from './monitoring/payload/factory';
import { createHttpApp } from './transport/http/app';
import { installedUiFiles } from './transport/http/ui';
import { OipService } from './transport/oip/service';

export interface Service {
  readonly config: Config;
  readonly dataplane: DataPlane;
  readonly repository: ModelRepository;
  readonly routing: RoutingSource;
  readonly httpServer: http.Server;
  readonly grpc: GrpcTransport;
  readonly metricsServer: http.Server;
  readonly metrics: ServiceMetrics;
  /** Load models and start listening; resolves when ready to serve. */
  start(): Promise<{ httpPort: number; grpcPort: number; metricsPort: number }>;
  reload(): Promise<ReloadReport>;
  /**
   * Drain: readiness false, refuse new requests, finish every admitted one
   * (bounded by DRAIN_TIMEOUT_MS), close the listeners, release models.
   */
  stop(): Promise<{ drained: boolean } & DrainStats & { stillInFlight: number }>;
}

async function runtimeFactory(config: Config): Promise<RuntimeFactory> {
  if (config.runtime === 'tfjs') return new TfjsRuntimeFactory(await TfjsEnvironment.create());
  return new OnnxRuntimeFactory({
    intraOpThreads: config.ortThreads,
    precision: (model) => precisionFor(config.modelPrecision, model),
    thread: config.inferenceThread,
  });
}

export const SERVER_NAME = 'product-classifier';

/** How long HTTP must have been quiet (no new connection or request) before a draining service closes its connections. */
const DRAIN_QUIET_MS = 200;

export function serverVersion(): string {
  const pkg = JSON.parse(readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** What tests may inject into a service besides its config. */
export interface ServiceOptions {
  /** Wall-clock milliseconds the pipeline compares call deadlines with (default Date.now). */
  wallClock?: () => number;
}

export async function createService(config: Config, log: AppLogger, opts: ServiceOptions = {}): Promise<Service> {
  if (!config.receiptSecret) {
    log.warn(
      {},
      'RECEIPT_SECRET is not set: prediction ids are signed with a per-process secret, so feedback is only accepted by this replica',
    );
  }
  const receipts = new ReceiptSigner(
    config.receiptSecret ? Buffer.from(config.receiptSecret) : randomBytes(32),
    config.feedbackMaxAgeHours * 3_600_000,
  );
  const repository = new ModelRepository({ dir: config.modelDir, factory: await runtimeFactory(config), log });
  const routing = new RoutingSource({
    file: config.routingFile,
    defaultModel: config.defaultModel,
    knownModels: () => repository.names(),
    log,
    pollMs: config.routingPollMs,
  });
  const monitor = new Monitor();
  const experiment = () => {
    const c = routing.status().config;
    return (
      c && { experiment: c.experiment, control: c.control, arms: c.arms.map((a) => ({ name: a.name, model: a.model, weight: a.weight })) }
    );
  };
  const metrics = new ServiceMetrics({
    report: () => monitor.report(experiment()),
    models: () => repository.status().models,
    loadFailures: () => repository.status().failures,
    weights: () => (routing.status().config?.arms ?? []).map((a) => ({ arm: a.name, model: a.model, weight: a.weight })),
    oodThresholds: () =>
      repository.names().flatMap((name) => {
        const m = repository.latest(name)!;
        return m.ood ? [{ model: name, version: m.version, threshold: m.ood.threshold, falseFlagRate: m.ood.falseFlagRate }] : [];
      }),
    payloadLog: () => payload?.counts() ?? {},
    references: () =>
      repository.names().map((name) => {
        const m = repository.latest(name)!.manifest;
        return {
          model: name,
          quantiles: m.reference.confidence.quantiles,
          labels: m.labels,
          classFrequencies: m.reference.predictedClass.frequencies,
        };
      }),
  });
  // Off (undefined) unless PAYLOAD_LOG_URL or PAYLOAD_LOG_FILE is set.
  const payload = createPayloadLogger({ ...config.payloadLog, counter: metrics.payloadLogRecords, logger: log });
  const admission = new Admission();
  const classifier = new Classifier({
    repository,
    preprocessor: new Preprocessor({ maxImageBytes: config.maxImageBytes, maxImagePixels: config.maxImagePixels }),
    selector: routing,
    batchers: new ModelBatchers(
      {
        maxBatchImages: config.batcherMaxSize,
        maxQueueDelayMs: config.batcherMaxDelayMs,
        maxQueueImages: config.batcherMaxQueue,
        maxConcurrentCalls: config.batcherConcurrency,
      },
      metrics,
    ),
    shadow: new ShadowTraffic({ repository, metrics, monitor, config: () => routing.status().config?.shadow }),
    receipts,
    monitor,
    metrics,
    maxImages: config.classifyMaxImages,
    abstain: config.abstain,
    payload,
  });
  const dataplane = new DataPlane({
    repository,
    admission,
    classifier,
    feedback: new FeedbackService({ repository, receipts, seen: new SeenIds(config.feedbackDedupCapacity), monitor, metrics }),
    monitor,
    experiment,
  });
  const pipeline = new RequestPipeline({ admission, metrics, log, ...(opts.wallClock ? { wallClock: opts.wallClock } : {}) });
  const oip = new OipService(dataplane, { name: SERVER_NAME, version: serverVersion() });
  const metricsServer = http.createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
          res.end(text);
        },
        (err: Error) => {
          log.error({ err: err.message }, 'metrics collection failed');
          res.writeHead(500).end();
        },
      );
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('metrics are at /metrics\n');
  });
  const grpc = createGrpcTransport(dataplane, oip, pipeline, {
    maxMessageBytes: config.grpcMaxMessageBytes,
    streamWindow: config.grpcStreamWindow,
  });
  const reload = async () => {
    const report = await repository.reload();
    for (const f of report.failed) metrics.modelLoadFailures.inc({ model: f.name, version: f.version });
    grpc.syncHealth();
    log.info({ loaded: report.loaded, removed: report.removed, failed: report.failed.length }, 'model reload finished');
    return report;
  };
  const app = createHttpApp(
    dataplane,
    oip,
    pipeline,
    { reload, routing },
    {
      maxImageBytes: config.maxImageBytes,
      maxImages: config.classifyMaxImages,
      maxJsonBytes: config.maxJsonBytes,
      adminToken: config.adminToken,
      corsOrigins: config.corsOrigins,
      ui: { tryItPage: config.tryItPage, files: installedUiFiles() },
    },
  );
  const httpServer = http.createServer(app);
  let lastHttpActivity = 0;
  const touch = () => {
    lastHttpActivity = performance.now();
  };
  httpServer.on('connection', touch).on('request', touch);
  httpServer.keepAliveTimeout = 65_000; // longer than typical load-balancer idle timeouts
  httpServer.headersTimeout = 66_000;
  httpServer.requestTimeout = 60_000;

  return {
    config,
    dataplane,
    repository,
    routing,
    httpServer,
    grpc,
    metricsServer,
    metrics,
    async start() {
      const report = await reload();
      if (repository.isEmpty()) {
        const why = report.failed.map((f) => `${f.name}/${f.version}: ${f.error}`).join('; ') || `no model found under ${config.modelDir}`;
        throw new Error(`no model could be loaded: ${why}`);
      }
      if (!repository.has(config.defaultModel)) {
        log.warn(
          { defaultModel: config.defaultModel, loaded: repository.names() },
          'DEFAULT_MODEL is not loaded; requests must name a model',
        );
      }
      const unscored = repository.names().filter((n) => !repository.latest(n)!.ood);
      if (config.abstain.policy !== 'off' && unscored.length > 0) {
        log.warn(
          { abstain: config.abstain.policy, withoutOodScore: unscored },
          'ABSTAIN is on but these models ship no out-of-distribution score: they abstain on low confidence only',
        );
      }
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(config.httpPort, config.host, () => resolve());
      });
      await routing.start();
      const grpcPort = await grpc.listen(config.host, config.grpcPort);
      await new Promise<void>((resolve, reject) => {
        metricsServer.once('error', reject);
        metricsServer.listen(config.metricsPort, config.host, () => resolve());
      });
      return { httpPort: (httpServer.address() as AddressInfo).port, grpcPort, metricsPort: (metricsServer.address() as AddressInfo).port };
    },
    reload,
    async stop() {
      // 1. Readiness false, health NOT_SERVING, new requests refused with
      //    UNAVAILABLE + Retry-After (on connections still open, and on new
      //    ones while the load balancer catches up); admitted ones go on.
      const deadline = Date.now() + config.drainTimeoutMs;
      const remaining = () => Math.max(0, deadline - Date.now());
      admission.startDraining();
      routing.stop();
      grpc.syncHealth();
      // 2. Wait for every admitted request to be answered (bounded).
      const idle = await admission.whenIdle(remaining());
      // 2b. Then until no connection or request has come in for a moment:
      //     bytes already on their way get read and refused with a 503,
      //     rather than cut off by a reset when the connections close.
      let quiet: number;
      while ((quiet = performance.now() - lastHttpActivity) < DRAIN_QUIET_MS && remaining() > 0) {
        await new Promise((r) => setTimeout(r, Math.min(DRAIN_QUIET_MS - quiet, remaining())));
      }
      // 3. Stop listening and close the connections: HTTP responses sent
      //    while draining carried `Connection: close`, so none is idle with
      //    a request of ours half done.
      const grpcDrained = grpc.stop(remaining());
      const closed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
      httpServer.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const httpClosed = await Promise.race([
        closed.then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), remaining());
        }),
      ]);
      clearTimeout(timer);
      if (!httpClosed) httpServer.closeAllConnections();
      const grpcOk = await grpcDrained;
      await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
      metricsServer.closeAllConnections();
      await repository.close();
      await payload?.close();
      return { drained: idle && httpClosed && grpcOk, ...admission.drainStats(), stillInFlight: admission.active };
    },
  };
}
