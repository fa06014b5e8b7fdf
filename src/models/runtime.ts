/**
 * One interface over the inference engines. A runtime takes a batch of
 * normalized images laid out as the manifest's input ([N,1,H,W] float32,
 * which for one channel is byte-identical to NHWC [N,H,W,1]) and returns the
 * model's raw outputs, [N, classes] row-major.
 */
import type { Manifest, ModelFormat } from './manifest';

export interface InferenceRuntime {
  readonly format: ModelFormat;
  /** Human-readable engine and backend, reported by /v1/models. */
  readonly backend: string;
  run(input: Float32Array, batch: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export interface RuntimeFactory {
  readonly format: ModelFormat;
  readonly backend: string;
  load(dir: string, manifest: Manifest): Promise<InferenceRuntime>;
}
