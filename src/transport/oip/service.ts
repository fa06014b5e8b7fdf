/**
 * The Open Inference Protocol's operations, shared by its REST and gRPC
 * adapters: server and model metadata, and inference through the DataPlane.
 * The adapters only convert their encodings (JSON tensors, protobuf
 * contents or raw bytes) to and from the plain tensors of codec.ts.
 */
import type { DataPlane } from '../../core/dataplane';
import { type ErrorCode, invalid, ServiceError } from '../../core/errors';
import type { Classification } from '../../core/types';
import {
  imagesFrom,
  type InputTensor,
  inputMetadata,
  metadataParameters,
  type OutputTensor,
  outputMetadata,
  outputsFrom,
  requestedOutputs,
} from './codec';

export interface InferRequest {
  model: string;
  version?: string;
  inputs: InputTensor[];
  outputs?: string[];
  /** The `abstain` request parameter: as ClassifyOptions.abstain. */
  abstain?: boolean;
  transport: 'oip-http' | 'oip-grpc';
}

export interface InferResult {
  modelName: string;
  modelVersion: string;
  /** The arm the request is reported under (OIP names its model, so 'explicit'). */
  arm: string;
  outputs: OutputTensor[];
}

export class OipService {
  constructor(
    private readonly dataplane: DataPlane,
    private readonly server: { name: string; version: string },
  ) {}

  /** Name, version and the protocol extensions served: REST's binary tensor data (gRPC has raw contents of its own). */
  serverMetadata() {
    return { name: this.server.name, version: this.server.version, extensions: ['binary_tensor_data'] };
  }

  /** The names of the models this replica serves. */
  modelNames(): string[] {
    return [...new Set(this.dataplane.models().models.map((m) => m.name))];
  }

  /**
   * The repository index (Triton's and KServe's model repository extension):
   * every version loaded, READY, and every version refused at load,
   * UNAVAILABLE with the reason.
   */
  repositoryIndex(): { name: string; version: string; state: 'READY' | 'UNAVAILABLE'; reason: string }[] {
    const { models, failures } = this.dataplane.models();
    return [
      ...models.map((m) => ({ name: m.name, version: m.version, state: 'READY' as const, reason: '' })),
      ...failures.map((f) => ({ name: f.name, version: f.version, state: 'UNAVAILABLE' as const, reason: f.error })),
    ];
  }

  modelMetadata(name: string, version?: string) {
    const m = this.dataplane.modelInfo(name, version);
    return {
      name: m.name,
      versions: m.versions,
      platform: m.format === 'onnx' ? 'onnxruntime_onnx' : 'tensorflowjs',
      inputs: inputMetadata(m),
      outputs: outputMetadata(m),
      ...(metadataParameters(m) ? { parameters: metadataParameters(m) } : {}),
    };
  }

  /**
   * One inference. The model is named by the request (OIP addresses models
   * explicitly); an image that fails fails the request, naming its index,
   * as OIP has no per-item errors.
   */
  async infer(req: InferRequest): Promise<InferResult> {
    const info = this.dataplane.modelInfo(req.model, req.version);
    const wanted = requestedOutputs(req.outputs, info);
    const images = imagesFrom(req.inputs, info);
    if (images.length === 0) throw invalid('the input tensor holds no images (batch dimension 0)');
    const items = await this.dataplane.classifyBatch(images, {
      model: req.model,
      version: req.version,
      topK: info.labels.length,
      abstain: req.abstain,
      transport: req.transport,
    });
    const results: Classification[] = [];
    items.forEach((item, i) => {
      if ('error' in item) throw new ServiceError(item.error.code as ErrorCode, `image ${i}: ${item.error.message}`);
      results.push(item);
    });
    return {
      modelName: results[0].model,
      modelVersion: results[0].version,
      arm: results[0].arm,
      outputs: outputsFrom(results, info.labels.length, wanted),
    };
  }
}
