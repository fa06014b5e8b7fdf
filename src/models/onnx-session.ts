/**
 * What the ONNX runtime and its inference thread share: the session options
 * (one place for them, whichever thread holds the session) and the messages
 * between the two threads.
 */
import type { InferenceSession } from 'onnxruntime-node';

export function sessionOptions(intraOpThreads: number): InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
}

/** What an inference thread is started with. */
export interface WorkerInit {
  file: string;
  intraOpThreads: number;
  inputName: string;
  outputName: string;
  /** The input's dimensions after the batch one. */
  dims: readonly number[];
}

export type WorkerRequest = { type: 'run'; id: number; input: Float32Array; batch: number } | { type: 'release' };

export type WorkerReply =
  | { type: 'loaded'; inputNames: string[]; outputNames: string[] }
  | { type: 'failed'; message: string }
  | { type: 'output'; id: number; output: Float32Array }
  | { type: 'error'; id: number; message: string }
  | { type: 'released' };
