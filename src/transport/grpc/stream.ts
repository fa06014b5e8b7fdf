/**
 * Ordered, flow-controlled processing of a bidirectional gRPC stream.
 *
 * Up to `window` requests are worked on at once; responses are written in
 * request order. Reading pauses while the window is full or while grpc-js
 * reports back-pressure (write() returned false, waiting for 'drain'), so
 * the requests being worked on stay within the window whatever the client
 * does. grpc-js only reports back-pressure once its own HTTP/2 buffers
 * fill, and measured over a real socket that can take thousands of small
 * answers (test/integration/grpc.test.ts waits for it rather than assuming
 * a count): the answers written but not yet read are bounded by grpc-js,
 * not by the window.
 * When `handle` throws, the responses before it are flushed and the call
 * ends with that error; when the client cancels, work stops being written.
 */
import type * as grpc from '@grpc/grpc-js';

export function streamInOrder<Req, Res>(
  call: grpc.ServerDuplexStream<Req, Res>,
  window: number,
  handle: (request: Req, index: number) => Promise<Res>,
  toStatus: (err: unknown) => Partial<grpc.StatusObject>,
): void {
  const queue: Promise<Res>[] = [];
  let received = 0;
  let inputEnded = false;
  let pumping = false;
  let finished = false;
  let paused = false;

  const finish = (err?: unknown) => {
    if (finished) return;
    finished = true;
    if (err === undefined) call.end();
    else call.emit('error', toStatus(err));
  };

  const adjustReading = () => {
    const full = queue.length >= window || call.writableNeedDrain;
    if (full && !paused) {
      call.pause();
      paused = true;
    } else if (!full && paused) {
      paused = false;
      call.resume();
    }
  };

  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      while (queue.length > 0 && !finished) {
        let res: Res;
        try {
          res = await queue[0];
        } catch (err) {
          queue.length = 0;
          finish(err);
          return;
        }
        void queue.shift(); // settled: awaited just above
        if (call.cancelled || finished) return;
        if (!call.write(res)) {
          adjustReading();
          await new Promise<void>((resolve) => {
            const done = () => {
              call.off('drain', done);
              call.off('close', done);
              call.off('cancelled', done);
              resolve();
            };
            call.on('drain', done);
            call.on('close', done);
            call.on('cancelled', done);
          });
        }
        adjustReading();
      }
      if (inputEnded && queue.length === 0) finish();
    } finally {
      pumping = false;
    }
  };

  call.on('data', (req: Req) => {
    if (finished) return;
    const index = received++;
    const p = handle(req, index);
    p.catch(() => undefined); // observed in order by pump(); avoid an unhandled rejection meanwhile
    queue.push(p);
    adjustReading();
    void pump();
  });
  call.on('end', () => {
    inputEnded = true;
    void pump();
  });
  call.on('error', () => {
    // The client went away; nothing more can be written.
    finished = true;
  });
}
