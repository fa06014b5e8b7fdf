/**
 * The settings an operator chooses for the ONNX runtime, named once: the
 * precision a model is served in, and the thread its session computes on.
 */

/** The float model, or its statically quantized copy (formats.onnx.int8 in the manifest). */
export type Precision = 'float32' | 'int8';
export const PRECISIONS: readonly Precision[] = ['float32', 'int8'];

/** An inference thread per model version (the service), or the calling thread (offline tools). */
export type InferenceThread = 'worker' | 'caller';
export const INFERENCE_THREADS: readonly InferenceThread[] = ['worker', 'caller'];
