/** Expected calibration error: sum over equal-width confidence bins of |B|/N * |accuracy_B - confidence_B|. */
export function expectedCalibrationError(confidences: ArrayLike<number>, correct: ArrayLike<boolean>, bins = 15): number {
  const n = confidences.length;
  const sumConf = new Float64Array(bins);
  const sumCorrect = new Float64Array(bins);
  const count = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    // bin b holds confidences in (b/bins, (b+1)/bins]
    const b = Math.min(bins - 1, Math.max(0, Math.ceil(confidences[i] * bins) - 1));
    sumConf[b] += confidences[i];
    sumCorrect[b] += correct[i] ? 1 : 0;
    count[b]++;
  }
  let ece = 0;
  for (let b = 0; b < bins; b++) if (count[b] > 0) ece += (count[b] / n) * Math.abs(sumCorrect[b] / count[b] - sumConf[b] / count[b]);
  return ece;
}
