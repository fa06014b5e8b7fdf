/**
 * The replay tool's view of the service, over HTTP (the public REST routes)
 * or gRPC (classifier.v1.ProductClassifier), the way a real backend calls it.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS, PRODUCT_PROTO } from '../../transport/grpc/protos';

export interface Answer {
  predictionId: string;
  model: string;
  arm: string;
  /** Absent when the service abstained. */
  labelIndex?: number;
  confidence: number;
  /** Why the service answered without a label, when it did. */
  abstained?: string;
}

export interface FeedbackAnswer {
  accepted: boolean;
  correct: boolean;
}

/** A failed call, with the service's error code (or the transport's). */
export class CallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ServiceClient {
  /** The class names of the served models, in index order. */
  labels(): Promise<string[]>;
  classify(image: Buffer, contentType: string, routingKey: string): Promise<Answer>;
  feedback(predictionId: string, labelIndex: number): Promise<FeedbackAnswer>;
  close(): void;
}

function sameLabels(models: { name: string; labels: string[] }[]): string[] {
  if (models.length === 0) throw new CallError('UNAVAILABLE', 'the service has no model loaded');
  const first = models[0].labels;
  for (const m of models) {
    if (m.labels.join('\n') !== first.join('\n'))
      throw new CallError('FAILED_PRECONDITION', `models ${models[0].name} and ${m.name} have different classes`);
  }
  return [...first];
}

export function httpClient(base: string): ServiceClient {
  const asJson = async <T>(res: Response): Promise<T> => {
    const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
    if (!res.ok) throw new CallError(body?.error?.code ?? `HTTP_${res.status}`, body?.error?.message ?? res.statusText);
    return body as T;
  };
  const post = (route: string, init: RequestInit) =>
    fetch(`${base}${route}`, { method: 'POST', ...init }).catch((err: Error) => {
      throw new CallError('UNAVAILABLE', `${base}${route}: ${(err.cause as Error | undefined)?.message ?? err.message}`);
    });
  return {
    async labels() {
      const res = await fetch(`${base}/v1/models`).catch((err: Error) => {
        throw new CallError('UNAVAILABLE', `${base}/v1/models: ${(err.cause as Error | undefined)?.message ?? err.message}`);
      });
      return sameLabels((await asJson<{ models: { name: string; labels: string[] }[] }>(res)).models);
    },
    async classify(image, contentType, routingKey) {
      const form = new FormData();
      form.append('image', new Blob([image], { type: contentType }), contentType === 'image/jpeg' ? 'photo.jpg' : 'image.png');
      const body = await asJson<Answer>(await post('/v1/classify', { body: form, headers: { 'X-Routing-Key': routingKey } }));
      return {
        predictionId: body.predictionId,
        model: body.model,
        arm: body.arm,
        labelIndex: body.labelIndex,
        confidence: body.confidence,
        ...(body.abstained ? { abstained: body.abstained } : {}),
      };
    },
    async feedback(predictionId, labelIndex) {
      const body = await asJson<{ accepted?: boolean; correct?: boolean }>(
        await post('/v1/feedback', {
          body: JSON.stringify({ predictionId, label: labelIndex }),
          headers: { 'Content-Type': 'application/json' },
        }),
      );
      return { accepted: body.accepted !== false, correct: Boolean(body.correct) };
    },
    close() {},
  };
}

export function grpcClient(target: string): ServiceClient {
  const def = protoLoader.loadSync([PRODUCT_PROTO], LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { classifier: { v1: { ProductClassifier: grpc.ServiceClientConstructor } } };
  const client = new pkg.classifier.v1.ProductClassifier(target, grpc.credentials.createInsecure()) as grpc.Client &
    Record<string, (...args: unknown[]) => void>;
  const unary = <T>(method: string, request: unknown): Promise<T> =>
    new Promise((resolve, reject) => {
      client[method](request, { deadline: Date.now() + 30_000 }, (err: grpc.ServiceError | null, res: T) => {
        if (!err) return resolve(res);
        const code = (err.metadata?.get('x-error-code')[0] as string | undefined) ?? grpc.status[err.code] ?? String(err.code);
        reject(new CallError(code, err.details || err.message));
      });
    });
  return {
    async labels() {
      const res = await unary<{ models: { name: string; labels: string[] }[] }>('ListModels', {});
      return sameLabels(res.models);
    },
    async classify(image, _contentType, routingKey) {
      const r = await unary<{
        prediction_id: string;
        model: string;
        arm: string;
        label_index?: number;
        confidence: number;
        abstained: string;
      }>('Classify', {
        image: { encoded: image },
        routing_key: routingKey,
      });
      return {
        predictionId: r.prediction_id,
        model: r.model,
        arm: r.arm,
        labelIndex: r.abstained ? undefined : r.label_index,
        confidence: r.confidence,
        ...(r.abstained ? { abstained: r.abstained } : {}),
      };
    },
    async feedback(predictionId, labelIndex) {
      const r = await unary<{ accepted: boolean; correct: boolean }>('SendFeedback', {
        prediction_id: predictionId,
        label_index: labelIndex,
      });
      return { accepted: r.accepted, correct: r.correct };
    },
    close() {
      client.close();
    },
  };
}
