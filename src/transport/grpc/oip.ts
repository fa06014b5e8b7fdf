/**
 * inference.GRPCInferenceService (Open Inference Protocol v2 over gRPC).
 * Tensors come in `contents` or in `raw_input_contents` (row-major,
 * little-endian; BYTES elements each prefixed by a 4-byte little-endian
 * length); the answer uses the same encoding the request used.
 */
import type * as grpc from '@grpc/grpc-js';
import type { DataPlane } from '../../core/dataplane';
import { invalid } from '../../core/errors';
import type { RequestPipeline } from '../../pipeline/pipeline';
import { checkShape, type InputTensor, type OutputTensor, tensorFromBinary, tensorToBinary } from '../oip/codec';
import type { OipService } from '../oip/service';
import { unary } from './errors';

interface Contents {
  fp32_contents?: number[];
  uint_contents?: number[];
  bytes_contents?: Buffer[];
  [k: string]: unknown;
}

interface InferInputMsg {
  name: string;
  datatype: string;
  shape: number[];
  contents?: Contents | null;
}

interface InferRequestMsg {
  model_name: string;
  model_version: string;
  id: string;
  inputs: InferInputMsg[];
  outputs: { name: string }[];
  raw_input_contents: Buffer[];
  parameters?: Record<string, { parameter_choice?: string; bool_param?: boolean }>;
}

/** JSON parameters as OIP's InferParameter map: strings as string_param, numbers as double_param. */
function inferParameters(p: Record<string, string | number> | undefined) {
  return Object.fromEntries(
    Object.entries(p ?? {}).map(([k, v]) => [k, typeof v === 'string' ? { string_param: v } : { double_param: v }]),
  );
}

/** The request's `abstain` parameter (bool_param); other parameters are the client's business, as OIP allows. */
function abstainParameter(req: InferRequestMsg): boolean | undefined {
  const p = req.parameters?.abstain;
  if (!p) return undefined;
  if (p.parameter_choice !== 'bool_param') throw invalid('parameters["abstain"] must be a bool_param');
  return p.bool_param;
}

function hasContents(c: Contents | null | undefined): boolean {
  return !!c && Object.values(c).some((v) => Array.isArray(v) && v.length > 0);
}

function fromContents(c: Contents | null | undefined, datatype: string, where: string): ArrayLike<number> | Buffer[] {
  switch (datatype) {
    case 'FP32':
      return c?.fp32_contents ?? [];
    case 'UINT8': {
      const v = c?.uint_contents ?? [];
      if (v.some((x) => x > 255)) throw invalid(`${where}: UINT8 values must be 0..255`);
      return v;
    }
    case 'BYTES':
      return c?.bytes_contents ?? [];
    default:
      throw invalid(`${where}: datatype ${datatype} is not accepted; inputs are FP32, UINT8 or BYTES`);
  }
}

export function decodeInputs(req: InferRequestMsg): { inputs: InputTensor[]; raw: boolean } {
  const raw = req.raw_input_contents.length > 0;
  if (raw && req.inputs.some((t) => hasContents(t.contents))) {
    throw invalid('raw_input_contents is set, so no input may also set contents');
  }
  if (raw && req.raw_input_contents.length !== req.inputs.length) {
    throw invalid(`raw_input_contents has ${req.raw_input_contents.length} entries for ${req.inputs.length} inputs`);
  }
  const inputs = req.inputs.map((t, i) => {
    const where = `input "${t.name}"`;
    const shape = checkShape(t.shape, where);
    const data = raw ? tensorFromBinary(req.raw_input_contents[i], t.datatype, shape, where) : fromContents(t.contents, t.datatype, where);
    return { name: t.name, datatype: t.datatype, shape, data };
  });
  return { inputs, raw };
}

function toContents(t: OutputTensor): Contents {
  if (t.datatype === 'FP32') return { fp32_contents: Array.from(t.data as Float32Array) };
  if (t.datatype === 'INT64') return { int64_contents: t.data as number[] };
  return { bytes_contents: (t.data as string[]).map((s) => Buffer.from(s)) };
}

type ModelRef = { name: string; version: string };

function requireName(req: ModelRef): ModelRef {
  if (!req.name) throw invalid('name is required');
  return req;
}

export function oipGrpcHandlers(dataplane: DataPlane, oip: OipService, pipeline: RequestPipeline): grpc.UntypedServiceImplementation {
  const transport = 'oip-grpc' as const;
  const same = <T>(x: T) => x;
  return {
    ServerLive: unary(pipeline, { transport, endpoint: 'health', work: () => ({ live: true }), encode: same }),
    ServerReady: unary(pipeline, { transport, endpoint: 'health', work: () => ({ ready: dataplane.isReady() }), encode: same }),
    ModelReady: unary(pipeline, {
      transport,
      endpoint: 'health',
      work: (req: ModelRef) => ({ ready: dataplane.modelReady(requireName(req).name, req.version || undefined) }),
      encode: same,
    }),
    ServerMetadata: unary(pipeline, { transport, endpoint: 'metadata', work: () => oip.serverMetadata(), encode: same }),
    ModelMetadata: unary(pipeline, {
      transport,
      endpoint: 'metadata',
      work: (req: ModelRef) => oip.modelMetadata(requireName(req).name, req.version || undefined),
      encode: (m) => ({ ...m, parameters: inferParameters(m.parameters) }),
    }),
    ModelInfer: unary(pipeline, {
      transport,
      endpoint: 'infer',
      work: async (req: InferRequestMsg) => {
        if (!req.model_name) throw invalid('model_name is required');
        const { inputs, raw } = decodeInputs(req);
        const result = await oip.infer({
          model: req.model_name,
          version: req.model_version || undefined,
          inputs,
          outputs: req.outputs.map((o) => o.name),
          abstain: abstainParameter(req),
          transport,
        });
        return { result, raw };
      },
      encode: ({ result, raw }, req) => ({
        model_name: result.modelName,
        model_version: result.modelVersion,
        id: req.id,
        outputs: result.outputs.map((t) => ({
          name: t.name,
          datatype: t.datatype,
          shape: t.shape,
          ...(raw ? {} : { contents: toContents(t) }),
        })),
        raw_output_contents: raw ? result.outputs.map(tensorToBinary) : [],
      }),
      served: ({ result }) => ({ model: result.modelName, arm: result.arm }),
    }),
  };
}
