/**
 * Command-line options of the traffic replay tool (`npm run replay -- ...`),
 * parsed and checked once. A bad flag stops the tool with a message naming it.
 */

export type DriftKind = 'catalog' | 'rotate' | 'blur' | 'noise' | 'brightness' | 'mix';

export interface DriftSpec {
  /** Perturbations applied to each image, in this order. */
  rotateDegrees?: number;
  blurSigma?: number;
  noiseStd?: number;
  brightness?: number;
  /** Send as an unnegated catalog photo (dark item on white, upscaled, JPEG). */
  catalog?: boolean;
  /** Class sampling weights (class name -> weight; unnamed classes weigh 1). */
  mix?: Record<string, number>;
}

export interface ReplayOptions {
  transport: 'http' | 'grpc';
  /** http://host:port for HTTP, host:port for gRPC. */
  target: string;
  /** A folder of images (labels from sub-folder names or labels.json); unset: the official test set. */
  images?: string;
  /** Index of the first image sent (the source is walked in order from there, wrapping around). */
  offset: number;
  /** Requests per second; 0 sends as fast as the concurrency allows. */
  rate: number;
  count: number;
  /** Stop after this many seconds even if `count` is not reached (0: no limit). */
  durationSeconds: number;
  concurrency: number;
  /** Distinct routing keys (customers); each request draws one. */
  keys: number;
  feedbackShare: number;
  feedbackDelaySeconds: number;
  /** Drift starts at this request index, or after driftAfterSeconds. */
  driftFromRequest?: number;
  driftAfterSeconds?: number;
  drift: DriftSpec;
  seed: number;
  json: boolean;
  quiet: boolean;
}

export class OptionsError extends Error {}

export const USAGE = `npm run replay -- [options]

Streams the official Fashion-MNIST test set (or a folder of images) to the
service, sends the true labels back as feedback, and can inject drift.

  --url URL              HTTP service (default http://127.0.0.1:8080)
  --grpc HOST:PORT       use the gRPC ProductClassifier API instead of HTTP
  --images DIR           images from DIR (class from sub-folder name or DIR/labels.json)
  --offset N             start at image N of the source (default 0; wraps around)
  --rate N               requests per second (default 50; 0 = as fast as possible)
  --count N              requests to send (default 10000)
  --duration S           stop after S seconds (default: no limit)
  --concurrency N        requests in flight at most (default 16)
  --keys N               distinct routing keys, i.e. customers (default 1000)
  --feedback SHARE       share of answers to send the true label back for (default 0.5)
  --feedback-delay S     seconds between answer and feedback (default 2)
  --drift LIST           perturbations, comma-separated: catalog, rotate:DEG, blur:SIGMA,
                         noise:STD, brightness:FACTOR, mix:Class=W+Class=W
  --drift-from N|Ss      drift from request N, or after S seconds (e.g. 30s; default 0)
  --seed N               random seed (default 1)
  --json                 print the summary as JSON on stdout
  --quiet                no progress lines on stderr
`;

function num(flag: string, raw: string | undefined, min: number, max: number, integer = false): number {
  const v = Number(raw);
  if (raw === undefined || raw === '' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new OptionsError(`${flag} ${raw ?? ''} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`);
  }
  return v;
}

export function parseDrift(list: string): DriftSpec {
  const spec: DriftSpec = {};
  for (const item of list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [kind, param] = item.split(/:(.*)/s, 2) as [string, string | undefined];
    switch (kind as DriftKind) {
      case 'catalog':
        spec.catalog = true;
        break;
      case 'rotate':
        spec.rotateDegrees = num('--drift rotate', param, -180, 180);
        break;
      case 'blur':
        spec.blurSigma = num('--drift blur', param, 0.3, 50);
        break;
      case 'noise':
        spec.noiseStd = num('--drift noise', param, 0, 255);
        break;
      case 'brightness':
        spec.brightness = num('--drift brightness', param, 0, 10);
        break;
      case 'mix': {
        if (!param) throw new OptionsError('--drift mix needs weights, e.g. mix:Bag=8+Sandal=4');
        spec.mix = {};
        for (const pair of param.split('+')) {
          const [name, w] = pair.split('=');
          if (!name) throw new OptionsError(`--drift mix: "${pair}" is not Class=Weight`);
          spec.mix[name] = num(`--drift mix ${name}`, w, 0, 1e6);
        }
        break;
      }
      default:
        throw new OptionsError(`--drift: unknown perturbation "${kind}" (catalog, rotate, blur, noise, brightness, mix)`);
    }
  }
  return spec;
}

export function hasDrift(d: DriftSpec): boolean {
  return Boolean(d.catalog || d.rotateDegrees || d.blurSigma || d.noiseStd || d.brightness !== undefined || d.mix);
}

export function parseOptions(argv: readonly string[]): ReplayOptions {
  const o: ReplayOptions = {
    transport: 'http',
    target: 'http://127.0.0.1:8080',
    offset: 0,
    rate: 50,
    count: 10_000,
    durationSeconds: 0,
    concurrency: 16,
    keys: 1000,
    feedbackShare: 0.5,
    feedbackDelaySeconds: 2,
    drift: {},
    seed: 1,
    json: false,
    quiet: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new OptionsError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--url': {
        const url = value();
        if (!/^https?:\/\/[^/]+/.test(url)) throw new OptionsError(`--url ${url} must look like http://host:port`);
        o.transport = 'http';
        o.target = url.replace(/\/+$/, '');
        break;
      }
      case '--grpc': {
        const target = value();
        if (!/^[^/:]+:\d+$/.test(target) && !/^\[[0-9a-f:]+\]:\d+$/i.test(target))
          throw new OptionsError(`--grpc ${target} must be host:port`);
        o.transport = 'grpc';
        o.target = target;
        break;
      }
      case '--images':
        o.images = value();
        break;
      case '--offset':
        o.offset = num(flag, value(), 0, 1e9, true);
        break;
      case '--rate':
        o.rate = num(flag, value(), 0, 1e6);
        break;
      case '--count':
        o.count = num(flag, value(), 1, 1e9, true);
        break;
      case '--duration':
        o.durationSeconds = num(flag, value(), 0, 1e7);
        break;
      case '--concurrency':
        o.concurrency = num(flag, value(), 1, 4096, true);
        break;
      case '--keys':
        o.keys = num(flag, value(), 1, 1e9, true);
        break;
      case '--feedback':
        o.feedbackShare = num(flag, value(), 0, 1);
        break;
      case '--feedback-delay':
        o.feedbackDelaySeconds = num(flag, value(), 0, 86_400);
        break;
      case '--drift':
        o.drift = parseDrift(value());
        break;
      case '--drift-from': {
        const v = value();
        if (v.endsWith('s')) o.driftAfterSeconds = num(flag, v.slice(0, -1), 0, 1e7);
        else o.driftFromRequest = num(flag, v, 0, 1e9, true);
        break;
      }
      case '--seed':
        o.seed = num(flag, value(), 0, 2 ** 31, true);
        break;
      case '--json':
        o.json = true;
        break;
      case '--quiet':
        o.quiet = true;
        break;
      default:
        throw new OptionsError(`unknown option ${flag}`);
    }
  }
  if ((o.driftFromRequest !== undefined || o.driftAfterSeconds !== undefined) && !hasDrift(o.drift)) {
    throw new OptionsError('--drift-from needs --drift');
  }
  return o;
}
