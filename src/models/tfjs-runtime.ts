/**
 * TF.js Layers runtime. Uses @tensorflow/tfjs-node when it can be imported
 * (native libtensorflow), otherwise @tensorflow/tfjs with the wasm backend.
 * TF.js keeps one engine per process; TfjsEnvironment is created once by the
 * composition root and shared by every TF.js model.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';
import type { Manifest } from './manifest';
import type { InferenceRuntime, RuntimeFactory } from './runtime';

type Tf = typeof tfTypes;

export class TfjsEnvironment {
  private constructor(
    readonly tf: Tf,
    readonly backend: string,
  ) {}

  /** Prefer tfjs-node; fall back to tfjs + wasm. `preferNode: false` forces wasm. */
  static async create(preferNode = true): Promise<TfjsEnvironment> {
    if (preferNode) {
      try {
        // Optional dependency: absent on machines that cannot download libtensorflow,
        // so it is required lazily, never imported.
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const tfNode = require('@tensorflow/tfjs-node') as Tf;
        await tfNode.ready();
        return new TfjsEnvironment(tfNode, `tfjs-node (${tfNode.getBackend()})`);
      } catch {
        /* not installed or not loadable: use wasm */
      }
    }
    // Loaded only when the TF.js runtime is chosen: the ONNX default never pays for it.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const tf = require('@tensorflow/tfjs') as Tf;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend('wasm');
    await tf.ready();
    return new TfjsEnvironment(tf, `tfjs ${tf.version.tfjs} (${tf.getBackend()})`);
  }
}

class TfjsRuntime implements InferenceRuntime {
  readonly format = 'tfjs' as const;

  constructor(
    private readonly env: TfjsEnvironment,
    private readonly model: tfTypes.LayersModel,
    private readonly dims: readonly number[],
  ) {}

  get backend(): string {
    return this.env.backend;
  }

  async run(input: Float32Array, batch: number): Promise<Float32Array> {
    const { tf } = this.env;
    const out = tf.tidy(() => this.model.predict(tf.tensor(input, [batch, ...this.dims], 'float32')) as tfTypes.Tensor);
    try {
      return (await out.data()) as Float32Array;
    } finally {
      out.dispose();
    }
  }

  async dispose(): Promise<void> {
    this.model.dispose();
  }
}

export class TfjsRuntimeFactory implements RuntimeFactory {
  readonly format = 'tfjs' as const;

  constructor(private readonly env: TfjsEnvironment) {}

  get backend(): string {
    return this.env.backend;
  }

  async load(dir: string, manifest: Manifest): Promise<InferenceRuntime> {
    const entry = manifest.formats.tfjs;
    if (!entry) throw new Error(`model ${manifest.name}/${manifest.version} has no TF.js format`);
    const modelPath = path.join(dir, entry.path);
    const modelJson = JSON.parse(await readFile(modelPath, 'utf8'));
    const groups: Array<{ paths: string[]; weights: tfTypes.io.WeightsManifestEntry[] }> = modelJson.weightsManifest;
    const specs: tfTypes.io.WeightsManifestEntry[] = [];
    const buffers: Buffer[] = [];
    for (const group of groups) {
      specs.push(...group.weights);
      for (const p of group.paths) buffers.push(await readFile(path.join(path.dirname(modelPath), p)));
    }
    const all = Buffer.concat(buffers);
    const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
    const { tf } = this.env;
    const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs: specs, weightData }));
    // NHWC shape for the same bytes as the manifest's NCHW input (one channel).
    const [, c, h, w] = manifest.input.shape;
    return new TfjsRuntime(this.env, model, entry.inputLayout === 'NHWC' ? [h, w, c] : [c, h, w]);
  }
}
