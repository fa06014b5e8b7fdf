/**
 * Running a served model in the browser: TF.js (served by the service at
 * /ui/vendor/tf.min.js, loaded on first use, the 'cpu' backend for
 * determinism and because the page's Content-Security-Policy allows no
 * eval), the model's TF.js layers artifact and manifest from
 * /ui/models/<name>/<version>/, and the manifest's normalization and
 * temperature: x = (pixel / 255 - mean) / std in the artifact's input
 * layout, probabilities = softmax(logits / temperature).
 */
import type * as TF from '@tensorflow/tfjs';
import { getManifest, type Manifest, modelFileUrl } from './api';

declare global {
  interface Window {
    tf?: typeof TF;
  }
}

const TFJS_URL = '/ui/vendor/tf.min.js';

let tfLoading: Promise<typeof TF> | undefined;

/**
 * tf.min.js bundles regenerator-runtime, which assigns the undeclared global
 * `regeneratorRuntime` in strict code and, when that throws, falls back to
 * `Function("r", "regeneratorRuntime = r")`: an eval, which the page's
 * policy refuses, and the whole bundle fails with an EvalError. With the
 * global declared beforehand the plain assignment works and no eval happens.
 */
function declareRegeneratorGlobal(): void {
  if (!('regeneratorRuntime' in window)) {
    Object.defineProperty(window, 'regeneratorRuntime', { value: undefined, writable: true, configurable: true });
  }
}

/** TF.js with its cpu backend ready; the script is added to the page once. */
export function loadTf(): Promise<typeof TF> {
  tfLoading ??= new Promise<typeof TF>((resolve, reject) => {
    if (window.tf && typeof window.tf.setBackend === 'function') return resolve(window.tf);
    declareRegeneratorGlobal();
    const script = document.createElement('script');
    script.src = TFJS_URL;
    script.async = true;
    script.addEventListener('load', () =>
      typeof window.tf?.setBackend === 'function' ? resolve(window.tf) : reject(new Error(`${TFJS_URL} loaded but defined no tf`)),
    );
    script.addEventListener('error', () => reject(new Error(`TF.js could not be loaded from ${TFJS_URL}`)));
    document.head.append(script);
  })
    .then(async (tf) => {
      if (!(await tf.setBackend('cpu'))) throw new Error("TF.js could not start its 'cpu' backend");
      await tf.ready();
      return tf;
    })
    .catch((err: unknown) => {
      tfLoading = undefined; // let a later attempt try again
      throw err;
    });
  return tfLoading;
}

export interface BrowserModel {
  name: string;
  version: string;
  manifest: Manifest;
  model: TF.LayersModel;
  /** The input's height and width, from the artifact's input shape. */
  height: number;
  width: number;
  layout: 'NHWC' | 'NCHW';
}

const models = new Map<string, Promise<BrowserModel>>();

/** A served model's TF.js artifact, loaded once per name and version. */
export function loadBrowserModel(name: string, version: string): Promise<BrowserModel> {
  const key = `${name}/${version}`;
  let loading = models.get(key);
  if (!loading) {
    loading = (async () => {
      const [tf, manifest] = await Promise.all([loadTf(), getManifest(name, version)]);
      const tfjs = manifest.formats.tfjs;
      if (!tfjs) throw new Error(`model ${key} has no TF.js artifact (its manifest lists no formats.tfjs)`);
      const file = tfjs.path.split('/').pop() ?? 'model.json';
      const model = await tf.loadLayersModel(modelFileUrl(name, version, file));
      const [, a, b, c] = tfjs.inputShape;
      const [height, width] = tfjs.inputLayout === 'NHWC' ? [a, b] : [b, c];
      return { name, version, manifest, model, height, width, layout: tfjs.inputLayout };
    })();
    loading.catch(() => models.delete(key));
    models.set(key, loading);
  }
  return loading;
}

export interface BrowserPrediction {
  probabilities: number[];
  labelIndex: number;
  label: string;
  confidence: number;
}

/** softmax(logits / temperature), in double precision. */
export function calibratedSoftmax(logits: ArrayLike<number>, temperature = 1): number[] {
  const scaled = Array.from(logits, (z) => z / temperature);
  const max = Math.max(...scaled);
  const exps = scaled.map((z) => Math.exp(z - max));
  const sum = exps.reduce((s, e) => s + e, 0);
  return exps.map((e) => e / sum);
}

/** Classify one image's raw 0..255 pixels (height x width, one channel). */
export async function predict(m: BrowserModel, pixels: ArrayLike<number>): Promise<BrowserPrediction> {
  const tf = await loadTf();
  const { mean, std } = m.manifest.input.normalization;
  const input = new Float32Array(m.height * m.width);
  for (let i = 0; i < input.length; i++) input[i] = (pixels[i] / 255 - mean) / std;
  // One channel: NHWC and NCHW hold the same values in the same order, only the shape differs.
  const shape: [number, number, number, number] = m.layout === 'NHWC' ? [1, m.height, m.width, 1] : [1, 1, m.height, m.width];
  const logits = tf.tidy(() => m.model.predict(tf.tensor4d(input, shape)) as TF.Tensor);
  let values: ArrayLike<number>;
  try {
    values = await logits.data();
  } finally {
    logits.dispose();
  }
  const probabilities = calibratedSoftmax(values, m.manifest.output.temperature ?? 1);
  let best = 0;
  for (let i = 1; i < probabilities.length; i++) if (probabilities[i] > probabilities[best]) best = i;
  return { probabilities, labelIndex: best, label: m.manifest.labels[best] ?? String(best), confidence: probabilities[best] };
}
