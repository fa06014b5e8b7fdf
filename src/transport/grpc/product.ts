/**
 * classifier.v1.ProductClassifier: convert protobuf messages to DataPlane
 * calls and back. No request rule lives here.
 */
import { performance } from 'node:perf_hooks';
import type * as grpc from '@grpc/grpc-js';
import type { DataPlane } from '../../core/dataplane';
import { invalid, ServiceError } from '../../core/errors';
import type { BatchItem, Classification, ClassifyOptions, ImageInput } from '../../core/types';
import { admitted, toGrpcError, unary } from './errors';
import { streamInOrder } from './stream';

interface ImageMsg {
  source?: 'encoded' | 'pixels';
  encoded?: Buffer;
  pixels?: { values: number[] } | null;
}

interface ClassifyRequestMsg {
  image?: ImageMsg | null;
  model: string;
  version: string;
  routing_key: string;
  top_k: number;
  tag: string;
}

interface BatchRequestMsg {
  images: ImageMsg[];
  model: string;
  version: string;
  routing_key: string;
  top_k: number;
}

export interface ProductOptions {
  /** Requests a ClassifyStream reads ahead of the responses the client has taken. */
  streamWindow: number;
  onInternal: (err: ServiceError) => void;
}

export function imageFrom(msg: ImageMsg | null | undefined, where: string): ImageInput {
  if (!msg || !msg.source) throw invalid(`${where} needs an image: set "encoded" (file bytes) or "pixels"`);
  if (msg.source === 'encoded') {
    if (!msg.encoded || msg.encoded.length === 0) throw invalid(`${where}.encoded is empty`);
    return { kind: 'encoded', bytes: msg.encoded };
  }
  return { kind: 'pixels', pixels: msg.pixels?.values ?? [] };
}

function optionsFrom(m: { model: string; version: string; routing_key: string; top_k: number }): ClassifyOptions {
  return {
    model: m.model || undefined,
    version: m.version || undefined,
    routingKey: m.routing_key || undefined,
    topK: m.top_k || undefined,
    transport: 'grpc',
  };
}

export function classificationMsg(c: Classification) {
  const cls = (p: { label: string; labelIndex: number; confidence: number }) => ({
    label: p.label,
    label_index: p.labelIndex,
    confidence: p.confidence,
  });
  return {
    prediction_id: c.predictionId,
    model: c.model,
    version: c.version,
    arm: c.arm,
    ...cls(c),
    top: c.top.map(cls),
    timings: { preprocess_ms: c.timings.preprocessMs, inference_ms: c.timings.inferenceMs, total_ms: c.timings.totalMs },
  };
}

function itemMsg(item: BatchItem) {
  return 'error' in item ? { error: item.error } : { classification: classificationMsg(item) };
}

export function productHandlers(dataplane: DataPlane, opts: ProductOptions): grpc.UntypedServiceImplementation {
  type Answer = { model?: string; arm?: string; results?: { classification?: { model: string; arm: string } }[] };
  const record = (code: string, seconds: number, result?: unknown) => {
    const res = result as Answer | undefined;
    const first = res?.model !== undefined ? res : res?.results?.find((r) => r.classification)?.classification;
    dataplane.recordRequest('grpc', seconds, code, first?.model ?? '', first?.arm ?? '');
  };
  return {
    Classify: unary<ClassifyRequestMsg, unknown>(
      admitted(dataplane, async (req) => {
        const result = await dataplane.classify(imageFrom(req.image, 'image'), optionsFrom(req));
        return classificationMsg(result);
      }),
      opts.onInternal,
      record,
    ),

    ClassifyBatch: unary<BatchRequestMsg, unknown>(
      admitted(dataplane, async (req) => {
        const images = req.images.map((m, i) => imageFrom(m, `images[${i}]`));
        const results = await dataplane.classifyBatch(images, optionsFrom(req));
        return { results: results.map(itemMsg) };
      }),
      opts.onInternal,
      record,
    ),

    ClassifyStream: (call: grpc.ServerDuplexStream<ClassifyRequestMsg, unknown>) => {
      streamInOrder(
        call,
        opts.streamWindow,
        async (req, index) => {
          const t0 = performance.now();
          let release: (() => void) | undefined;
          try {
            release = dataplane.admit(); // each stream item is its own request: refused once draining
            const c = await dataplane.classify(imageFrom(req.image, 'image'), optionsFrom(req));
            dataplane.recordRequest('grpc', (performance.now() - t0) / 1000, 'OK', c.model, c.arm);
            return { index, tag: req.tag, classification: classificationMsg(c) };
          } catch (err) {
            const e = ServiceError.from(err);
            if (e.code === 'INTERNAL') opts.onInternal(e);
            dataplane.recordRequest('grpc', (performance.now() - t0) / 1000, e.code);
            // Not ready / draining ends the stream; an image's own fault answers in place.
            if (e.code === 'UNAVAILABLE') throw e;
            return { index, tag: req.tag, error: e.toJSON() };
          } finally {
            release?.();
          }
        },
        (err) => toGrpcError(err),
      );
    },

    SendFeedback: unary<{ prediction_id: string; truth?: 'label' | 'label_index'; label?: string; label_index?: number }, unknown>(
      admitted(dataplane, async (req) => {
        const label = req.truth === 'label' ? req.label : req.truth === 'label_index' ? req.label_index : undefined;
        const r = await dataplane.feedback({ predictionId: req.prediction_id, label, transport: 'grpc' });
        return { accepted: r.accepted, correct: r.correct, model: r.model, version: r.version, arm: r.arm };
      }),
      opts.onInternal,
      record,
    ),

    ListModels: unary<Record<string, never>, unknown>(async () => {
      const { models } = dataplane.models();
      return {
        models: models.map((m) => ({
          name: m.name,
          version: m.version,
          kind: m.kind ?? '',
          format: m.format,
          backend: m.backend,
          parameters: m.parameters ?? 0,
          test_accuracy: m.testAccuracy ?? 0,
          labels: m.labels,
          loaded_at: m.loadedAt,
        })),
      };
    }, opts.onInternal),
  };
}
