/**
 * The Open Inference Protocol's REST bodies: a JSON inference request, or
 * (the binary tensor data extension, as KServe and Triton speak it) a JSON
 * inference header followed by raw tensor bytes, the header
 * `Inference-Header-Content-Length` giving the JSON's length. An input with
 * `"parameters": {"binary_data_size": N}` and no `data` takes the next N
 * bytes of the binary part, inputs in order; an output asked for with
 * `"parameters": {"binary_data": true}` (or every output, with the request
 * parameter `binary_data_output`) is answered the same way. The tensors'
 * own rules (datatypes, sizes, values) are codec.ts's, shared with gRPC.
 */
import { invalid } from '../../core/errors';
import { checkKnownFields } from '../../core/rules';
import { checkShape, type InputTensor, type OutputTensor, tensorFromBinary, tensorFromJson, tensorToBinary } from '../oip/codec';
import type { InferResult } from '../oip/service';
import { decodeBase64, isObject } from './parse';

/** The request header that says where the JSON ends (HTTP header names are case-insensitive; node lower-cases them). */
export const INFERENCE_HEADER = 'inference-header-content-length';
/** The same header in an answer with binary outputs. */
export const INFERENCE_HEADER_NAME = 'Inference-Header-Content-Length';

/** Deepest `data` nesting accepted: a tensor has a handful of dimensions; hostile JSON can have a million. */
const MAX_DATA_DEPTH = 16;

/** Flatten nested JSON arrays (row-major), as OIP allows `data` nested or flat. Iterative: no stack to exhaust. */
export function flattenData(data: unknown, where: string): unknown[] {
  if (!Array.isArray(data)) throw invalid(`${where}.data must be an array`);
  const out: unknown[] = [];
  const stack: Array<{ items: unknown[]; next: number }> = [{ items: data, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.next === top.items.length) {
      stack.pop();
      continue;
    }
    const v = top.items[top.next++];
    if (!Array.isArray(v)) out.push(v);
    else if (stack.length >= MAX_DATA_DEPTH) throw invalid(`${where}.data is nested deeper than ${MAX_DATA_DEPTH} levels`);
    else stack.push({ items: v, next: 0 });
  }
  return out;
}

/**
 * A body cut where `Inference-Header-Content-Length` says: the JSON text and
 * the binary tensor data after it. Without the header the body is all JSON
 * and there is no binary part.
 */
export function splitBody(body: Buffer, header: string | undefined): { json: Buffer; binary: Buffer | undefined } {
  if (header === undefined) return { json: body, binary: undefined };
  const text = header.trim();
  if (!/^[0-9]{1,15}$/.test(text))
    throw invalid(`${INFERENCE_HEADER_NAME} must be the byte length of the JSON part; got "${text.slice(0, 32)}"`);
  const length = Number(text);
  if (length === 0) throw invalid(`${INFERENCE_HEADER_NAME} is 0: the body must begin with the JSON inference request`);
  if (length > body.length) throw invalid(`${INFERENCE_HEADER_NAME} is ${length} bytes, but the body has only ${body.length}`);
  return { json: body.subarray(0, length), binary: body.subarray(length) };
}

/** An input's `binary_data_size` parameter: undefined, or a byte count. */
function binaryDataSize(t: Record<string, unknown>, where: string): number | undefined {
  if (!isObject(t.parameters) || t.parameters.binary_data_size === undefined) return undefined;
  const n = t.parameters.binary_data_size;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)
    throw invalid(`${where}.parameters.binary_data_size must be a byte count (a non-negative integer)`);
  return n;
}

/**
 * The request's inputs as tensors: each from its JSON `data` (BYTES
 * elements as base64 strings) or, with `binary_data_size`, from the next
 * bytes of `binary` (the body's binary part; undefined when the request has
 * none), which the inputs must use up exactly.
 */
export function jsonInputs(body: Record<string, unknown>, binary?: Buffer): InputTensor[] {
  if (!Array.isArray(body.inputs)) throw invalid('inputs must be an array of tensors {name, shape, datatype, data}');
  let offset = 0;
  const inputs = body.inputs.map((t, i): InputTensor => {
    const where = `inputs[${i}]`;
    if (!isObject(t)) throw invalid(`${where} must be an object`);
    checkKnownFields(t, ['name', 'shape', 'datatype', 'data', 'parameters'], where);
    if (typeof t.name !== 'string' || typeof t.datatype !== 'string') throw invalid(`${where} needs a string name and datatype`);
    const shape = checkShape(t.shape, where);
    const size = binaryDataSize(t, where);
    if (size === undefined) {
      return {
        name: t.name,
        datatype: t.datatype,
        shape,
        data: tensorFromJson(flattenData(t.data, where), t.datatype, where, decodeBase64),
      };
    }
    if (t.data !== undefined) throw invalid(`${where} has both data and parameters.binary_data_size; send its values one way`);
    if (binary === undefined) {
      throw invalid(
        `${where}.parameters.binary_data_size says its data follows the JSON, but the request has no ${INFERENCE_HEADER_NAME} header to say where the JSON ends`,
      );
    }
    if (offset + size > binary.length) {
      throw invalid(
        `${where}.parameters.binary_data_size is ${size} bytes, but ${binary.length - offset} bytes of binary data are left for it (${binary.length} after the JSON)`,
      );
    }
    const bytes = binary.subarray(offset, offset + size);
    offset += size;
    return { name: t.name, datatype: t.datatype, shape, data: tensorFromBinary(bytes, t.datatype, shape, `${where} binary data`) };
  });
  if (binary !== undefined && offset !== binary.length) {
    throw invalid(
      `the body has ${binary.length} bytes of binary data after the JSON, but the inputs' binary_data_size add up to ${offset}`,
    );
  }
  return inputs;
}

/** A JSON boolean parameter, or undefined. */
function boolParameter(parameters: Record<string, unknown>, name: string, where: string): boolean | undefined {
  const v = parameters[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw invalid(`${where}.${name} must be a JSON boolean`);
  return v;
}

/** The outputs asked for (undefined: all), and which of them are to be answered in binary form. */
export interface OutputRequest {
  names: string[] | undefined;
  binary: (name: string) => boolean;
}

/**
 * `outputs` ({name, parameters?: {binary_data}}) and the request parameters:
 * `abstain` (as the product API's) and `binary_data_output` (every output
 * in binary form unless its own `binary_data` says otherwise). Other
 * parameters are the client's business, as OIP allows.
 */
export function outputRequest(body: Record<string, unknown>): OutputRequest & { abstain: boolean | undefined } {
  let names: string[] | undefined;
  const own = new Map<string, boolean>();
  if (body.outputs !== undefined) {
    if (!Array.isArray(body.outputs) || !body.outputs.every((o) => isObject(o) && typeof o.name === 'string')) {
      throw invalid('outputs must be an array of {"name": ...}');
    }
    body.outputs.forEach((o: Record<string, unknown>, i) => {
      if (o.parameters === undefined) return;
      if (!isObject(o.parameters)) throw invalid(`outputs[${i}].parameters must be an object`);
      const b = boolParameter(o.parameters, 'binary_data', `outputs[${i}].parameters`);
      if (b !== undefined) own.set(o.name as string, b);
    });
    names = body.outputs.map((o) => (o as { name: string }).name);
  }
  let all = false;
  let abstain: boolean | undefined;
  if (body.parameters !== undefined) {
    if (!isObject(body.parameters)) throw invalid('parameters must be an object');
    abstain = boolParameter(body.parameters, 'abstain', 'parameters');
    all = boolParameter(body.parameters, 'binary_data_output', 'parameters') ?? false;
  }
  return { names, binary: (name) => own.get(name) ?? all, abstain };
}

/**
 * The answer: JSON, or, when some output is to be binary, the JSON header
 * (those outputs with `binary_data_size` in place of `data`) followed by
 * their bytes in output order, with the JSON's length for
 * Inference-Header-Content-Length.
 */
export function encodeResponse(
  result: InferResult,
  id: string | undefined,
  binary: (name: string) => boolean,
): { json: string } | { body: Buffer; headerLength: number } {
  const parts: Buffer[] = [];
  const outputs = result.outputs.map((t: OutputTensor) => {
    if (!binary(t.name))
      return { name: t.name, datatype: t.datatype, shape: t.shape, data: Array.from(t.data as ArrayLike<number | string>) };
    const bytes = tensorToBinary(t);
    parts.push(bytes);
    return { name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: bytes.length } };
  });
  const json = JSON.stringify({
    model_name: result.modelName,
    model_version: result.modelVersion,
    ...(id !== undefined ? { id } : {}),
    outputs,
  });
  if (parts.length === 0) return { json };
  const header = Buffer.from(json);
  return { body: Buffer.concat([header, ...parts]), headerLength: header.length };
}
