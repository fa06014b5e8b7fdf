/**
 * Request bodies on the hot routes (/v1/classify, /v1/classify/batch and
 * OIP infer), read by the service itself: the bytes go into one Buffer
 * within the body limit (MAX_JSON_BYTES), a JSON body is parsed once (pixel
 * arrays by the fast path of pixel-json.ts), and no generic body parser
 * runs. Rare bodies, compressed (Content-Encoding) or declaring a charset
 * other than UTF-8, go to body-parser as before, so they keep the meaning
 * and the errors they had; so do the answers to every fault: an empty body,
 * a body over the limit (read out, then refused), invalid JSON.
 */
import type { IncomingMessage } from 'node:http';
import express, { type Request, type Response } from 'express';
import { invalid, ServiceError } from '../../core/errors';
import { bodyTooLarge, fromHttpLayer, type HttpLimits } from './errors';
import { EMPTY_JSON_BODY, hasBody } from './parse';
import { isSpace, parsePixelJson } from './pixel-json';

/** body-parser's answer to invalid JSON, as the error middleware words it. */
export const NOT_JSON = 'request body is not valid JSON';

/** Not compressed: body-parser's test (an absent or empty Content-Encoding is identity). */
function identity(req: IncomingMessage): boolean {
  const e = req.headers['content-encoding'];
  return !e || e.toLowerCase() === 'identity';
}

/** JSON in UTF-8, the one charset this reader decodes itself (body-parser takes UTF-16 and refuses the rest). */
const UTF8_JSON = /^application\/json[ \t]*(?:;[ \t]*charset=(?:utf-8|"utf-8")[ \t]*)?$/i;

/**
 * Run to the end of a request body without keeping it, then call `done`
 * (once): a request refused before its upload ends is read out first, or
 * the client would see a reset connection instead of the answer.
 */
function drain(req: IncomingMessage, done: () => void): void {
  let called = false;
  const once = () => {
    if (!called) {
      called = true;
      done();
    }
  };
  if (req.complete) return once();
  req.once('end', once).once('close', once).once('error', once);
  req.resume();
}

/** The body's bytes, at most `limit`; a body over it is read out and refused with `tooLarge`. */
export function readBytes(req: IncomingMessage, limit: number, tooLarge: () => ServiceError): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) return drain(req, () => reject(tooLarge()));
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = () => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) {
        cleanup();
        drain(req, () => reject(tooLarge()));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received));
    };
    const aborted = () => new ServiceError('CANCELLED', 'request aborted by the client');
    const onError = () => {
      cleanup();
      reject(aborted());
    };
    const onClose = () => {
      if (req.complete) return;
      cleanup();
      reject(aborted());
    };
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

/**
 * A JSON text as body-parser (strict) reads it: a UTF-8 byte-order mark
 * dropped, an empty text an empty object, anything but an object or an
 * array at the top refused, then JSON.parse; with `pixels`, a pixel body
 * through the fast path first (only where one is expected: on a body of
 * another shape it would scan the text once more before JSON.parse).
 * `what` names the text in the error (the request body; OIP's JSON
 * inference header).
 */
export function parseJson(bytes: Buffer, what = 'request body', pixels = false): unknown {
  const text = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? bytes.subarray(3) : bytes;
  if (text.length === 0) return {};
  const fast = pixels ? parsePixelJson(text) : undefined;
  if (fast !== undefined) return fast;
  const notJson = () => invalid(what === 'request body' ? NOT_JSON : `${what} is not valid JSON`);
  let first = 0;
  while (first < text.length && isSpace(text[first])) first++;
  if (text[first] !== 0x7b && text[first] !== 0x5b) throw notJson();
  try {
    return JSON.parse(text.toString('utf8'));
  } catch {
    throw notJson();
  }
}

/** Reads the bodies of the hot routes. */
export class BodyReader {
  private readonly generalJson: express.RequestHandler;
  private readonly generalRaw: express.RequestHandler;

  constructor(private readonly limits: HttpLimits) {
    this.generalJson = express.json({ limit: limits.maxJsonBytes, strict: true });
    this.generalRaw = express.raw({ limit: limits.maxJsonBytes, type: () => true });
  }

  private tooLarge = () => bodyTooLarge(this.limits.maxJsonBytes);

  /** body-parser's middleware as a promise of what it put in req.body, its errors mapped as the error middleware maps them. */
  private general(parser: express.RequestHandler, req: Request, res: Response): Promise<unknown> {
    return new Promise((resolve, reject) =>
      parser(req, res, (err?: unknown) => (err === undefined ? resolve(req.body) : reject(fromHttpLayer(err, this.limits)))),
    );
  }

  /** The body as bytes, whatever its content type (a compressed one inflated). */
  async bytes(req: Request, res: Response): Promise<Buffer> {
    if (identity(req)) return readBytes(req, this.limits.maxJsonBytes, this.tooLarge);
    return (await this.general(this.generalRaw, req, res)) as Buffer;
  }

  /**
   * A JSON body (the request declares application/json): parsed (pixel
   * arrays by the fast path, with `pixels`), or the error body-parser's
   * reading would have given. No body at all is EMPTY_JSON_BODY, not an
   * empty object.
   */
  async json(req: Request, res: Response, pixels = false): Promise<unknown> {
    if (!hasBody(req.headers)) throw invalid(EMPTY_JSON_BODY);
    if (identity(req) && UTF8_JSON.test(req.headers['content-type'] ?? '')) {
      return parseJson(await readBytes(req, this.limits.maxJsonBytes, this.tooLarge), 'request body', pixels);
    }
    return this.general(this.generalJson, req, res);
  }
}
