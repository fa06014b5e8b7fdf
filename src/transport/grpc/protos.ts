/**
 * The service's .proto files, loaded at start with proto-loader (no
 * generated code to keep in sync). Field names stay as written in the
 * protos (snake_case), which is also how the OIP spec names them.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as HEALTH_PROTO } from 'grpc-health-check';

export const PROTO_ROOT = path.resolve(__dirname, '../../../../proto');
export const PRODUCT_PROTO = 'classifier/v1/classifier.proto';
export const OIP_PROTO = 'inference/v2/grpc_predict_v2.proto';

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

export interface LoadedProtos {
  definition: protoLoader.PackageDefinition;
  product: grpc.ServiceDefinition;
  oip: grpc.ServiceDefinition;
}

export function loadProtos(): LoadedProtos {
  // Health is served by grpc-health-check; its proto is loaded here too so
  // that reflection lists it.
  const definition = protoLoader.loadSync([PRODUCT_PROTO, OIP_PROTO, HEALTH_PROTO], LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    classifier: { v1: { ProductClassifier: grpc.ServiceClientConstructor } };
    inference: { GRPCInferenceService: grpc.ServiceClientConstructor };
  };
  return {
    definition,
    product: pkg.classifier.v1.ProductClassifier.service,
    oip: pkg.inference.GRPCInferenceService.service,
  };
}
