/** ONNX Runtime (onnxruntime-node, CPU binaries shipped in the npm package). */
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Manifest, Precision } from './manifest';
import type { InferenceRuntime, RuntimeFactory } from './runtime';

export interface OnnxOptions {
  intraOpThreads: number;
  /** The precision a model is served in (MODEL_PRECISION); float32 when not given. */
  precision?: (model: string) => Precision;
}

/** The ONNX file of a manifest for a precision; an int8 request for a version without an int8 copy is refused. */
export function onnxPath(manifest: Manifest, precision: Precision): string {
  const entry = manifest.formats.onnx;
  if (!entry) throw new Error(`model ${manifest.name}/${manifest.version} has no ONNX format`);
  if (precision === 'float32') return entry.path;
  if (!entry.int8)
    throw new Error(
      `model ${manifest.name}/${manifest.version} has no int8 ONNX model (formats.onnx.int8), but MODEL_PRECISION asks for int8`,
    );
  return entry.int8.path;
}

class OnnxRuntime implements InferenceRuntime {
  readonly format = 'onnx' as const;

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly inputName: string,
    private readonly outputName: string,
    private readonly dims: readonly number[],
    readonly backend: string,
  ) {}

  async run(input: Float32Array, batch: number): Promise<Float32Array> {
    const tensor = new ort.Tensor('float32', input, [batch, ...this.dims]);
    const out = await this.session.run({ [this.inputName]: tensor });
    return out[this.outputName].data as Float32Array;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

export class OnnxRuntimeFactory implements RuntimeFactory {
  readonly format = 'onnx' as const;
  readonly backend: string;

  constructor(private readonly opts: OnnxOptions) {
    this.backend = `onnxruntime-node ${ort.env.versions.node ?? ''} cpu, ${opts.intraOpThreads} intra-op thread(s)`.replace('  ', ' ');
  }

  async load(dir: string, manifest: Manifest): Promise<InferenceRuntime> {
    const file = onnxPath(manifest, this.opts.precision?.(manifest.name) ?? 'float32');
    const session = await ort.InferenceSession.create(path.join(dir, file), {
      intraOpNumThreads: this.opts.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    if (!session.inputNames.includes(manifest.input.name) || !session.outputNames.includes(manifest.output.name)) {
      await session.release();
      throw new Error(
        `${file} has inputs [${session.inputNames}] and outputs [${session.outputNames}], ` +
          `manifest names ${manifest.input.name} -> ${manifest.output.name}`,
      );
    }
    return new OnnxRuntime(session, manifest.input.name, manifest.output.name, manifest.input.shape.slice(1), this.backend);
  }
}
