/**
 * Dynamic micro-batching for one model (the idea of Triton's dynamic
 * batcher): requests that arrive while the model is busy wait in a bounded
 * queue and go to the runtime together in its next call, up to a maximum
 * batch; a request that finds the model idle runs in the same event-loop
 * turn, so low load adds no latency worth measuring. Beyond the queue's
 * bound, requests are refused at once with RESOURCE_EXHAUSTED and a retry
 * hint, never left to wait without limit.
 *
 * Dispatch happens in setImmediate, after the event loop's I/O phase:
 * deferring to the check phase lets every request already read in that turn
 * join the next call instead of each finding the model idle in turn.
 */
import { ServiceError } from '../core/errors';

export interface BatcherOptions {
  /** Images in one runtime call at most. A request larger than this runs alone. */
  maxBatchImages: number;
  /**
   * When the model frees up with fewer than maxBatchImages queued, wait until
   * the oldest queued request has waited this long for more to arrive. 0:
   * run whatever is queued at once.
   */
  maxQueueDelayMs: number;
  /** Images waiting at most; more are refused. */
  maxQueueImages: number;
  /** Runtime calls in flight at once for this model. */
  maxConcurrentCalls: number;
}

/** One runtime call: `images` rows of input in, `images` rows of output out. */
export type RunBatch = (input: Float32Array, images: number) => Promise<Float32Array>;

export interface BatchCall {
  images: number;
  requests: number;
  seconds: number;
}

interface Job {
  input: Float32Array;
  images: number;
  enqueuedAt: number;
  resolve: (out: Float32Array) => void;
  reject: (err: unknown) => void;
}

export class DynamicBatcher {
  private readonly queue: Job[] = [];
  private queuedImages = 0;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;

  constructor(
    private readonly run: RunBatch,
    /** Values per image in the input and in the output. */
    private readonly shape: { inputSize: number; outputSize: number },
    private readonly opts: BatcherOptions,
    private readonly onCall: (call: BatchCall) => void = () => {},
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Images waiting for a runtime call. */
  get pending(): number {
    return this.queuedImages;
  }

  submit(input: Float32Array, images: number): Promise<Float32Array> {
    if (this.queuedImages + images > this.opts.maxQueueImages && this.queuedImages > 0) {
      return Promise.reject(
        new ServiceError('RESOURCE_EXHAUSTED', `the model is overloaded: ${this.queuedImages} images already wait for it; retry shortly`, {
          retryAfterSeconds: 1,
        }),
      );
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ input, images, enqueuedAt: this.now(), resolve, reject });
      this.queuedImages += images;
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.inFlight < this.opts.maxConcurrentCalls && this.queue.length > 0) {
      // The model is free. A lone request, or a full batch, goes now; a short
      // batch waits up to maxQueueDelayMs from its oldest request, and only
      // when other calls are in flight to fill it (idle means no wait).
      if (this.opts.maxQueueDelayMs > 0 && this.inFlight > 0 && this.queuedImages < this.opts.maxBatchImages) {
        const waited = this.now() - this.queue[0].enqueuedAt;
        if (waited < this.opts.maxQueueDelayMs) {
          this.timer ??= setTimeout(() => {
            this.timer = undefined;
            this.schedule();
          }, this.opts.maxQueueDelayMs - waited);
          return;
        }
      }
      this.start(this.take());
    }
  }

  /** The oldest requests that fit in one batch (at least one). */
  private take(): Job[] {
    const jobs: Job[] = [this.queue.shift()!];
    let images = jobs[0].images;
    while (this.queue.length > 0 && images + this.queue[0].images <= this.opts.maxBatchImages) {
      const next = this.queue.shift()!;
      images += next.images;
      jobs.push(next);
    }
    this.queuedImages -= images;
    return jobs;
  }

  private start(jobs: Job[]): void {
    const images = jobs.reduce((n, j) => n + j.images, 0);
    let input: Float32Array;
    if (jobs.length === 1) input = jobs[0].input;
    else {
      input = new Float32Array(images * this.shape.inputSize);
      let offset = 0;
      for (const j of jobs) {
        input.set(j.input.subarray(0, j.images * this.shape.inputSize), offset);
        offset += j.images * this.shape.inputSize;
      }
    }
    this.inFlight++;
    const t0 = this.now();
    this.run(input, images)
      .then(
        (out) => {
          this.onCall({ images, requests: jobs.length, seconds: (this.now() - t0) / 1000 });
          if (jobs.length === 1) return jobs[0].resolve(out);
          let row = 0;
          for (const j of jobs) {
            j.resolve(out.subarray(row * this.shape.outputSize, (row + j.images) * this.shape.outputSize));
            row += j.images;
          }
        },
        (err) => {
          for (const j of jobs) j.reject(err);
        },
      )
      .finally(() => {
        this.inFlight--;
        this.schedule();
      });
  }
}
