/**
 * Sliding windows with bounded memory: a ring of per-minute vectors of
 * counters. Adding touches the current minute's vector; a window of the last
 * W minutes is the sum of W vectors. Memory is slots x width numbers,
 * whatever the traffic (24 h of 122 counters is 1,440 x 122 x 8 bytes).
 */
export class MinuteWindows {
  private readonly data: Float64Array;
  private readonly stamps: Float64Array;

  constructor(
    readonly width: number,
    readonly slots = 1440,
    private readonly now: () => number = Date.now,
  ) {
    this.data = new Float64Array(width * slots);
    this.stamps = new Float64Array(slots).fill(-1);
  }

  private slotFor(minute: number): number {
    const slot = minute % this.slots;
    if (this.stamps[slot] !== minute) {
      this.data.fill(0, slot * this.width, (slot + 1) * this.width);
      this.stamps[slot] = minute;
    }
    return slot;
  }

  /** Add `amount` to counter `index` of the current minute. */
  add(index: number, amount = 1): void {
    const slot = this.slotFor(Math.floor(this.now() / 60_000));
    this.data[slot * this.width + index] += amount;
  }

  /** Add a whole vector to the current minute. */
  addAll(values: ArrayLike<number>): void {
    const base = this.slotFor(Math.floor(this.now() / 60_000)) * this.width;
    for (let i = 0; i < this.width; i++) this.data[base + i] += values[i];
  }

  /** Sum of the last `minutes` minutes (the current one included). */
  sum(minutes: number): Float64Array {
    const out = new Float64Array(this.width);
    const current = Math.floor(this.now() / 60_000);
    const span = Math.min(minutes, this.slots);
    for (let m = current - span + 1; m <= current; m++) {
      const slot = m % this.slots;
      if (m < 0 || this.stamps[slot] !== m) continue;
      const base = slot * this.width;
      for (let i = 0; i < this.width; i++) out[i] += this.data[base + i];
    }
    return out;
  }
}
