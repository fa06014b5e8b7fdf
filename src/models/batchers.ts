/**
 * One micro-batcher per loaded model version, made on first use and gone
 * with the version (a WeakMap keyed by the loaded model), each observing its
 * runtime calls in the inference metrics.
 */
import type { ServiceMetrics } from '../monitoring/metrics';
import { type BatcherOptions, DynamicBatcher } from './batcher';
import type { LoadedModel } from './model';

export class ModelBatchers {
  private readonly batchers = new WeakMap<LoadedModel, DynamicBatcher>();

  constructor(
    private readonly options: BatcherOptions,
    private readonly metrics: ServiceMetrics,
  ) {}

  /**
   * Run `images` rows of normalized input through `model`, merged with
   * whatever else is waiting for it: the runtime's raw outputs
   * (LoadedModel.raw), which the caller calibrates.
   */
  raw(model: LoadedModel, input: Float32Array, images: number): Promise<Float32Array> {
    return this.for(model).submit(input, images);
  }

  private for(model: LoadedModel): DynamicBatcher {
    let b = this.batchers.get(model);
    if (!b) {
      const labels = { model: model.name, version: model.version };
      b = new DynamicBatcher(
        (input, n) => model.raw(input, n),
        { inputSize: model.pixelsPerImage, outputSize: model.numClasses },
        this.options,
        (call) => {
          // Per runtime call: what batching merged, and what the call cost.
          this.metrics.inferenceDuration.observe(labels, call.seconds);
          this.metrics.batchSize.observe(labels, call.images);
        },
      );
      this.batchers.set(model, b);
    }
    return b;
  }
}
