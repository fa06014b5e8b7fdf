/** Real @grpc/grpc-js clients for the service's gRPC endpoints, built from the .proto files. */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS, OIP_PROTO, PRODUCT_PROTO, PROTO_ROOT } from '../src/transport/grpc/protos';
import { ROOT } from './helpers';

type Ctor = grpc.ServiceClientConstructor;

export interface Clients {
  product: grpc.Client & Record<string, any>;
  oip: grpc.Client & Record<string, any>;
  health: grpc.Client & Record<string, any>;
  reflection: grpc.Client & Record<string, any>;
  close(): void;
}

export function clients(port: number): Clients {
  const healthProto = path.join(ROOT, 'node_modules/grpc-health-check/proto/health/v1/health.proto');
  const reflectionProto = path.join(ROOT, 'node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
  const def = protoLoader.loadSync([PRODUCT_PROTO, OIP_PROTO, healthProto, reflectionProto], {
    ...LOADER_OPTIONS,
    includeDirs: [PROTO_ROOT],
  });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const target = `127.0.0.1:${port}`;
  const creds = grpc.credentials.createInsecure();
  const opts = { 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 };
  const product = new (pkg.classifier.v1.ProductClassifier as Ctor)(target, creds, opts);
  const oip = new (pkg.inference.GRPCInferenceService as Ctor)(target, creds, opts);
  const health = new (pkg.grpc.health.v1.Health as Ctor)(target, creds);
  const reflection = new (pkg.grpc.reflection.v1.ServerReflection as Ctor)(target, creds);
  return {
    product: product as any,
    oip: oip as any,
    health: health as any,
    reflection: reflection as any,
    close() {
      for (const c of [product, oip, health, reflection]) c.close();
    },
  };
}

/** Promise form of a unary call; rejects with the grpc error (code, details, metadata). */
export function call<T = any>(client: any, method: string, request: unknown, options: grpc.CallOptions = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method](request, new grpc.Metadata(), options, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

/** Assert-friendly view of a failed call. */
export async function failure(p: Promise<unknown>): Promise<{ code: number; details: string; errorCode?: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details, errorCode: e.metadata?.get('x-error-code')[0] as string | undefined };
  }
  throw new Error('expected the call to fail');
}

/** The services the server lists through reflection (what `grpcurl list` shows). */
export function listServices(c: Clients): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
    const s = c.reflection.ServerReflectionInfo();
    s.on('data', (m: any) => {
      resolve(m.list_services_response.service.map((x: { name: string }) => x.name));
      s.end();
    });
    s.on('error', reject);
    s.write({ list_services: '' });
  });
}
