/** Payload-log records for tests: a 28 x 28 input whose pixels depend on the record's number. */
import type { PayloadRecord } from '../../src/monitoring/payload/record';

export function pixelsOf(i: number): Uint8Array {
  return Uint8Array.from({ length: 784 }, (_, k) => (k * 7 + i) % 256);
}

/** Record `i`: id `pred-000i` (every id the same length, so every line too), made at 2025-01-02T03:04:05.00iZ. */
export function payloadRecord(i: number, over: Partial<PayloadRecord> = {}): PayloadRecord {
  return {
    id: `pred-${String(i).padStart(4, '0')}`,
    time: new Date(Date.UTC(2025, 0, 2, 3, 4, 5, i % 1000)),
    model: 'dendritic',
    version: '2',
    arm: 'candidate',
    transport: 'http',
    input: { width: 28, height: 28, pixels: pixelsOf(i) },
    answer: {
      label: 'Shirt',
      confidence: 0.42,
      top: [
        { label: 'Shirt', labelIndex: 6, confidence: 0.42 },
        { label: 'T-shirt/top', labelIndex: 0, confidence: 0.31 },
        { label: 'Pullover', labelIndex: 2, confidence: 0.12 },
      ],
      ood: { score: 0.07, threshold: 2.5, flagged: false },
    },
    reason: 'low-confidence',
    ...over,
  };
}
