/**
 * The inference thread of one ONNX model (a worker_threads entry point).
 *
 * onnxruntime-node's session.run computes on the thread that calls it, even
 * through its promise, so a call made on the event loop blocks every request
 * behind it. The service therefore holds each session here, on a thread of
 * its own: the event loop posts a batch (its buffer transferred, not cloned),
 * goes on accepting and answering requests, and gets the outputs back the
 * same way. Calls run one at a time, in the order posted.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { sessionOptions, type WorkerInit, type WorkerReply, type WorkerRequest } from './onnx-session';

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('onnx-worker runs as a worker thread');
  const init = workerData as WorkerInit;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(init.file, sessionOptions(init.intraOpThreads));
  } catch (err) {
    port.postMessage({ type: 'failed', message: (err as Error).message } satisfies WorkerReply);
    return;
  }
  port.postMessage({ type: 'loaded', inputNames: [...session.inputNames], outputNames: [...session.outputNames] } satisfies WorkerReply);

  // One call at a time: the queue is the port's own message order.
  let chain = Promise.resolve();
  port.on('message', (msg: WorkerRequest) => {
    chain = chain.then(async () => {
      if (msg.type === 'release') {
        await session.release();
        port.postMessage({ type: 'released' } satisfies WorkerReply);
        port.close();
        return;
      }
      try {
        const tensor = new ort.Tensor('float32', msg.input, [msg.batch, ...init.dims]);
        const out = await session.run({ [init.inputName]: tensor });
        // A copy the port can transfer: the runtime's own buffer may be native memory.
        const data = (out[init.outputName].data as Float32Array).slice();
        port.postMessage({ type: 'output', id: msg.id, output: data } satisfies WorkerReply, [data.buffer]);
      } catch (err) {
        port.postMessage({ type: 'error', id: msg.id, message: (err as Error).message } satisfies WorkerReply);
      }
    });
  });
}

void main();
