/**
 * ONNX Runtime (onnxruntime-node, CPU binaries shipped in the npm package).
 *
 * The service runs each session on an inference thread of its own
 * (onnx-worker.ts), so that the event loop keeps accepting and answering
 * requests while a batch computes; the offline tools run sessions on the
 * calling thread, where nothing else waits.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { InferenceThread, Precision } from '../core/runtime-settings';
import type { Manifest } from './manifest';
import { sessionOptions, type WorkerInit, type WorkerReply, type WorkerRequest } from './onnx-session';
import type { InferenceRuntime, RuntimeFactory } from './runtime';

export type { InferenceThread } from '../core/runtime-settings';

export interface OnnxOptions {
  intraOpThreads: number;
  /** The precision a model is served in (MODEL_PRECISION); float32 when not given. */
  precision?: (model: string) => Precision;
  /** Default: caller. */
  thread?: InferenceThread;
}

/** The ONNX file of a manifest for a precision; an int8 request for a version without an int8 copy is refused. */
export function onnxPath(manifest: Manifest, precision: Precision): string {
  const entry = manifest.formats.onnx;
  if (!entry) throw new Error(`model ${manifest.name}/${manifest.version} has no ONNX format`);
  if (precision === 'float32') return entry.path;
  if (!entry.int8) {
    throw new Error(
      `model ${manifest.name}/${manifest.version} has no int8 ONNX model (formats.onnx.int8), but MODEL_PRECISION asks for int8`,
    );
  }
  return entry.int8.path;
}

/** Refuse a session whose input and output names are not the manifest's. */
function checkNames(file: string, manifest: Manifest, inputs: readonly string[], outputs: readonly string[]): void {
  if (!inputs.includes(manifest.input.name) || !outputs.includes(manifest.output.name)) {
    throw new Error(
      `${file} has inputs [${inputs}] and outputs [${outputs}], manifest names ${manifest.input.name} -> ${manifest.output.name}`,
    );
  }
}

/** A session on the calling thread. */
class CallerRuntime implements InferenceRuntime {
  readonly format = 'onnx' as const;

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly init: WorkerInit,
    readonly backend: string,
  ) {}

  async run(input: Float32Array, batch: number): Promise<Float32Array> {
    const tensor = new ort.Tensor('float32', input, [batch, ...this.init.dims]);
    const out = await this.session.run({ [this.init.inputName]: tensor });
    return out[this.init.outputName].data as Float32Array;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

interface Pending {
  resolve: (out: Float32Array) => void;
  reject: (err: Error) => void;
}

/** One inference thread holding one session, and the calls it owes answers to. */
class InferenceWorker {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | undefined;
  private released: (() => void) | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly label: string,
    /** Told once when the thread fails or exits unasked. */
    private readonly onFailure: (worker: InferenceWorker) => void,
  ) {}

  /** Start a thread and wait for its session: the session's input and output names, or the load error. */
  static start(
    init: WorkerInit,
    label: string,
    onFailure: (worker: InferenceWorker) => void,
  ): Promise<{ worker: InferenceWorker; inputs: string[]; outputs: string[] }> {
    return new Promise((resolve, reject) => {
      const thread = new Worker(path.join(__dirname, 'onnx-worker.js'), { workerData: init });
      const self = new InferenceWorker(thread, label, onFailure);
      let loaded = false;
      thread.on('message', (m: WorkerReply) => {
        if (m.type === 'loaded') {
          loaded = true;
          resolve({ worker: self, inputs: m.inputNames, outputs: m.outputNames });
        } else if (m.type === 'failed') {
          reject(new Error(m.message));
          void thread.terminate();
        } else self.reply(m);
      });
      thread.on('error', (err) => (loaded ? self.fail(err) : reject(err)));
      thread.on('exit', (code) => {
        if (!loaded) reject(new Error(`the inference thread of ${label} exited (code ${code}) before its model loaded`));
        else if (self.released) self.released();
        else self.fail(new Error(`exited (code ${code})`));
      });
    });
  }

  run(input: Float32Array, batch: number): Promise<Float32Array> {
    if (this.failure) return Promise.reject(this.failure);
    // A buffer of its own to transfer: the caller keeps reading its input (scores, payload log).
    const copy = input.slice();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'run', id, input: copy, batch } satisfies WorkerRequest, [copy.buffer]);
    });
  }

  /** Release the session once the calls already posted have run, then end the thread. */
  release(): Promise<void> {
    if (this.failure) return this.worker.terminate().then(() => undefined);
    return new Promise((resolve) => {
      this.released = resolve;
      this.worker.postMessage({ type: 'release' } satisfies WorkerRequest);
    });
  }

  private reply(m: WorkerReply): void {
    if (m.type !== 'output' && m.type !== 'error') return;
    const call = this.pending.get(m.id);
    this.pending.delete(m.id);
    if (m.type === 'output') call?.resolve(m.output);
    else call?.reject(new Error(`${this.label}: ${m.message}`));
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = new Error(`the inference thread of ${this.label} failed: ${err.message}`);
    for (const call of this.pending.values()) call.reject(this.failure);
    this.pending.clear();
    this.onFailure(this);
  }
}

/**
 * A session on an inference thread. Should the thread fail (its calls are
 * rejected with the reason), the next call starts a new one.
 */
class WorkerRuntime implements InferenceRuntime {
  readonly format = 'onnx' as const;
  private current: Promise<InferenceWorker> | undefined;

  constructor(
    private readonly init: WorkerInit,
    private readonly label: string,
    readonly backend: string,
  ) {}

  /** Start the first thread: the session's input and output names, or the load error. */
  async open(): Promise<{ inputs: string[]; outputs: string[] }> {
    const started = this.spawn();
    this.current = started.then((s) => s.worker);
    this.current.catch(() => {}); // the caller hears of a failed load through `started`
    return started;
  }

  /** A new thread; one that fails to load leaves the next call to try again. */
  private spawn(): ReturnType<typeof InferenceWorker.start> {
    const started = InferenceWorker.start(this.init, this.label, this.replace);
    started.catch(() => {
      this.current = undefined;
    });
    return started;
  }

  /** Told by a thread that failed: the next call starts another. */
  private readonly replace = (failed: InferenceWorker): void => {
    void this.current?.then((w) => {
      if (w === failed) this.current = undefined;
    });
  };

  async run(input: Float32Array, batch: number): Promise<Float32Array> {
    this.current ??= this.spawn().then((s) => s.worker);
    const worker = await this.current;
    return worker.run(input, batch);
  }

  async dispose(): Promise<void> {
    const worker = await this.current?.catch(() => undefined);
    const unloaded = Promise.reject(new Error(`${this.label} was unloaded`));
    unloaded.catch(() => {});
    this.current = unloaded;
    await worker?.release();
  }
}

export class OnnxRuntimeFactory implements RuntimeFactory {
  readonly format = 'onnx' as const;
  readonly backend: string;

  constructor(private readonly opts: OnnxOptions) {
    const where = opts.thread === 'worker' ? ', on an inference thread per model' : '';
    this.backend = `onnxruntime-node ${ort.env.versions.node ?? ''} cpu, ${opts.intraOpThreads} intra-op thread(s)${where}`.replace(
      '  ',
      ' ',
    );
  }

  async load(dir: string, manifest: Manifest): Promise<InferenceRuntime> {
    const precision = this.opts.precision?.(manifest.name) ?? 'float32';
    const file = onnxPath(manifest, precision);
    const init: WorkerInit = {
      file: path.join(dir, file),
      intraOpThreads: this.opts.intraOpThreads,
      inputName: manifest.input.name,
      outputName: manifest.output.name,
      dims: manifest.input.shape.slice(1),
    };
    const backend = `${this.backend}, ${precision}`;
    if (this.opts.thread !== 'worker') {
      const session = await ort.InferenceSession.create(init.file, sessionOptions(init.intraOpThreads));
      try {
        checkNames(file, manifest, session.inputNames, session.outputNames);
      } catch (err) {
        await session.release();
        throw err;
      }
      return new CallerRuntime(session, init, backend);
    }
    const runtime = new WorkerRuntime(init, `${manifest.name}/${manifest.version}`, backend);
    const names = await runtime.open();
    try {
      checkNames(file, manifest, names.inputs, names.outputs);
    } catch (err) {
      await runtime.dispose();
      throw err;
    }
    return runtime;
  }
}
