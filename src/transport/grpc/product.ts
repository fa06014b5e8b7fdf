/**
 * classifier.v1.ProductClassifier: convert protobuf messages to DataPlane
 * calls and back. No request rule lives here.
 */
import type * as grpc from '@grpc/grpc-js';
import type { DataPlane } from '../../core/dataplane';
import { invalid, ServiceError } from '../../core/errors';
import type { BatchItem, Classification, ClassifyOptions, ImageInput } from '../../core/types';
import type { RequestPipeline, Served } from '../../pipeline/pipeline';
import { callInfo, toGrpcError, unary } from './errors';
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
}

export function imageFrom(msg: ImageMsg | null | undefined, where: string): ImageInput {
  if (!msg || !msg.source) throw invalid(`${where} needs an image: set "encoded" (file bytes) or "pixels"`);
  if (msg.source === 'encoded') {
    if (!msg.encoded || msg.encoded.length === 0) throw invalid(`${where}.encoded is empty`);
    return { kind: 'encoded', bytes: msg.encoded };
  }
  return { kind: 'pixels', pixels: msg.pixels?.values ?? [] };
}

/** The Abstain enum (proto-loader gives its names): the request's choice, or undefined for the server's policy. */
const ABSTAIN_CHOICE: Record<string, boolean | undefined> = { ABSTAIN_DEFAULT: undefined, ABSTAIN_ON: true, ABSTAIN_OFF: false };

function optionsFrom(m: { model: string; version: string; routing_key: string; top_k: number; abstain?: string }): ClassifyOptions {
  return {
    model: m.model || undefined,
    version: m.version || undefined,
    routingKey: m.routing_key || undefined,
    topK: m.top_k || undefined,
    abstain: ABSTAIN_CHOICE[m.abstain ?? 'ABSTAIN_DEFAULT'],
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
    // An abstained answer leaves label and label_index unset (label_index is `optional`: no 0 that reads as a class).
    ...(c.label !== undefined ? { label: c.label, label_index: c.labelIndex } : {}),
    confidence: c.confidence,
    top: c.top.map(cls),
    timings: { preprocess_ms: c.timings.preprocessMs, inference_ms: c.timings.inferenceMs, total_ms: c.timings.totalMs },
    ...(c.ood ? { ood: c.ood } : {}),
    ...(c.abstained ? { abstained: c.abstained } : {}),
  };
}

function itemMsg(item: BatchItem) {
  return 'error' in item ? { error: item.error } : { classification: classificationMsg(item) };
}

/** The model and arm of a classification, or of a batch's first classified image. */
function servedBy(items: BatchItem[] | Classification): Served | undefined {
  const c = Array.isArray(items) ? items.find((r): r is Classification => 'model' in r) : items;
  return c && { model: c.model, arm: c.arm };
}

export function productHandlers(dataplane: DataPlane, pipeline: RequestPipeline, opts: ProductOptions): grpc.UntypedServiceImplementation {
  return {
    Classify: unary(pipeline, {
      transport: 'grpc',
      endpoint: 'classify',
      work: (req: ClassifyRequestMsg) => dataplane.classify(imageFrom(req.image, 'image'), optionsFrom(req)),
      encode: classificationMsg,
      served: servedBy,
    }),

    ClassifyBatch: unary(pipeline, {
      transport: 'grpc',
      endpoint: 'classify_batch',
      work: (req: BatchRequestMsg) =>
        dataplane.classifyBatch(
          req.images.map((m, i) => imageFrom(m, `images[${i}]`)),
          optionsFrom(req),
        ),
      encode: (results) => ({ results: results.map(itemMsg) }),
      served: servedBy,
    }),

    // Each stream message is its own request through the pipeline: admitted
    // (refused once draining), timed, counted and logged on its own.
    ClassifyStream: (call: grpc.ServerDuplexStream<ClassifyRequestMsg, unknown>) => {
      streamInOrder(
        call,
        opts.streamWindow,
        async (req, index) => {
          try {
            const c = await pipeline.run(
              callInfo(call, 'grpc', 'classify_stream'),
              () => dataplane.classify(imageFrom(req.image, 'image'), optionsFrom(req)),
              servedBy,
            );
            return { index, tag: req.tag, classification: classificationMsg(c) };
          } catch (err) {
            const e = ServiceError.from(err);
            // Not ready / draining ends the stream; an image's own fault answers in place.
            if (e.code === 'UNAVAILABLE') throw e;
            return { index, tag: req.tag, error: e.toJSON() };
          }
        },
        toGrpcError,
      );
    },

    SendFeedback: unary(pipeline, {
      transport: 'grpc',
      endpoint: 'feedback',
      work: (req: { prediction_id: string; truth?: 'label' | 'label_index'; label?: string; label_index?: number }) =>
        dataplane.feedback({
          predictionId: req.prediction_id,
          label: req.truth === 'label' ? req.label : req.truth === 'label_index' ? req.label_index : undefined,
        }),
      encode: (r) => ({
        accepted: r.accepted,
        correct: r.correct,
        model: r.model,
        version: r.version,
        arm: r.arm,
        abstained: r.abstained === true,
      }),
      served: (r) => ({ model: r.model, arm: r.arm }),
    }),

    ListModels: unary(pipeline, {
      transport: 'grpc',
      endpoint: 'metadata',
      work: () => dataplane.models(),
      encode: ({ models }) => ({
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
      }),
    }),
  };
}
