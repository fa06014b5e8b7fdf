/**
 * The gRPC transport: classifier.v1.ProductClassifier, the Open Inference
 * Protocol's inference.GRPCInferenceService, grpc.health.v1.Health tied to
 * readiness, and server reflection (grpcurl and GUI clients list and call
 * the services without the .proto files).
 */
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { DataPlane } from '../../core/dataplane';
import type { RequestPipeline } from '../../pipeline/pipeline';
import type { OipService } from '../oip/service';
import { oipGrpcHandlers } from './oip';
import { productHandlers } from './product';
import { loadProtos } from './protos';

export interface GrpcOptions {
  maxMessageBytes: number;
  streamWindow: number;
}

export const SERVICE_NAMES = ['classifier.v1.ProductClassifier', 'inference.GRPCInferenceService'] as const;

export interface GrpcTransport {
  readonly server: grpc.Server;
  /** Bind and start; resolves with the bound port. */
  listen(host: string, port: number): Promise<number>;
  /** Health: SERVING when the DataPlane is ready, NOT_SERVING otherwise. */
  syncHealth(): void;
  /** NOT_SERVING, then let calls (streams included) finish within `timeoutMs`. */
  stop(timeoutMs: number): Promise<boolean>;
}

export function createGrpcTransport(dataplane: DataPlane, oip: OipService, pipeline: RequestPipeline, opts: GrpcOptions): GrpcTransport {
  const protos = loadProtos();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes,
    'grpc.max_send_message_length': opts.maxMessageBytes,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(protos.product, productHandlers(dataplane, pipeline, { streamWindow: opts.streamWindow }));
  server.addService(protos.oip, oipGrpcHandlers(dataplane, oip, pipeline));

  const health = new HealthImplementation({ '': 'NOT_SERVING', ...Object.fromEntries(SERVICE_NAMES.map((n) => [n, 'NOT_SERVING'])) });
  health.addToServer(server);
  new ReflectionService(protos.definition).addToServer(server);

  let published: string | undefined;
  const syncHealth = () => {
    const status = dataplane.isReady() ? 'SERVING' : 'NOT_SERVING';
    if (status === published) return; // watchers hear a change once
    published = status;
    health.setStatus('', status);
    for (const n of SERVICE_NAMES) health.setStatus(n, status);
  };

  return {
    server,
    listen(host: string, port: number) {
      return new Promise<number>((resolve, reject) => {
        server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
          if (err) return reject(err);
          syncHealth();
          resolve(bound);
        });
      });
    },
    syncHealth,
    async stop(timeoutMs: number) {
      syncHealth(); // the DataPlane is draining by now: NOT_SERVING
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        new Promise<boolean>((resolve) => server.tryShutdown(() => resolve(true))),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (!drained) server.forceShutdown();
      return drained;
    },
  };
}
