/**
 * Posts each record to a CloudEvents receiver (a KServe logger URL, a
 * Knative broker, any HTTP endpoint) as KServe's inference logger does: the
 * request event, then, if it was accepted, the response event.
 *
 * At most `concurrency` records are in flight, one post each, on an agent
 * with as many sockets; every post has `timeoutMs` for the whole exchange,
 * after which its socket is destroyed. A 2xx answer is delivery; any other
 * status or a network error is `sink_error`, an expired post `timeout`.
 * Nothing is retried: payload logging is best effort, at most once.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { type BinaryEvent, cloudEvents, type EventSource } from './cloudevents';
import type { PayloadRecord } from './record';
import { type PayloadSink, realTimers, type SinkOutcome, type Timers } from './sink';

export interface HttpSinkOptions {
  /** Bound of one post, request to the end of the answer (default 2000). */
  timeoutMs?: number;
  /** Records (so posts, so sockets) in flight at once (default 4). */
  concurrency?: number;
  /** `ce-source` (default `/product-classifier`). */
  source?: string;
  /** `ce-inferenceservicename` (default `product-classifier`). */
  inferenceService?: string;
  /** `ce-namespace`; left out when not given. */
  namespace?: string;
  timers?: Timers;
}

export class HttpCloudEventSink implements PayloadSink {
  readonly name = 'http';
  readonly concurrency: number;
  private readonly target: URL;
  private readonly timeoutMs: number;
  private readonly from: EventSource;
  private readonly timers: Timers;
  private readonly agent: http.Agent;
  private readonly active = new Map<http.ClientRequest, Promise<SinkOutcome>>();
  private closed = false;

  constructor(url: string, opts: HttpSinkOptions = {}) {
    this.target = new URL(url);
    if (this.target.protocol !== 'http:' && this.target.protocol !== 'https:') {
      throw new Error(`payload log URL must be http or https, not ${this.target.protocol}`);
    }
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.concurrency = opts.concurrency ?? 4;
    if (!(this.timeoutMs > 0) || !Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new Error('payload log HTTP sink needs timeoutMs > 0 and an integer concurrency >= 1');
    }
    this.from = {
      source: opts.source ?? '/product-classifier',
      inferenceService: opts.inferenceService ?? 'product-classifier',
      namespace: opts.namespace,
    };
    this.timers = opts.timers ?? realTimers;
    const Agent = this.target.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: this.concurrency, maxFreeSockets: this.concurrency });
  }

  async send(record: PayloadRecord): Promise<SinkOutcome> {
    const [request, response] = cloudEvents(record, this.from);
    const first = await this.post(request);
    return first === 'sent' ? this.post(response) : first;
  }

  /** Sockets the sink holds open now, busy or idle (never more than `concurrency`). */
  sockets(): number {
    const count = (pool: NodeJS.ReadOnlyDict<Socket[]>) =>
      Object.values(pool).reduce((n, list) => n + (list ?? []).filter((s) => !s.destroyed).length, 0);
    return count(this.agent.sockets) + count(this.agent.freeSockets);
  }

  /** Aborts the posts in flight (each settles as a sink_error) and closes every socket. */
  async close(): Promise<void> {
    this.closed = true;
    const settling = [...this.active.values()];
    for (const req of this.active.keys()) req.destroy(new Error('payload log closed'));
    this.agent.destroy();
    await Promise.all(settling);
  }

  private post(event: BinaryEvent): Promise<SinkOutcome> {
    if (this.closed) return Promise.resolve('sink_error');
    let settled = false;
    let req: http.ClientRequest | undefined;
    const posting = new Promise<SinkOutcome>((resolve) => {
      let timedOut = false;
      const body = Buffer.from(event.body, 'utf8');
      const send = this.target.protocol === 'https:' ? https.request : http.request;
      const request = send(this.target, {
        method: 'POST',
        agent: this.agent,
        headers: { ...event.headers, 'content-length': String(body.length) },
      });
      const timer = this.timers.setTimeout(() => {
        timedOut = true;
        request.destroy(new Error(`no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const settle = (outcome: SinkOutcome) => {
        if (settled) return;
        settled = true;
        this.timers.clearTimeout(timer);
        this.active.delete(request);
        resolve(outcome);
      };
      req = request;
      const failed = () => settle(timedOut ? 'timeout' : 'sink_error');
      let answered = false;
      request.on('response', (res) => {
        answered = true;
        const ok = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
        res.on('end', () => settle(ok ? 'sent' : 'sink_error'));
        res.on('error', failed);
        // After 'end' this changes nothing; without it, the answer was cut off.
        res.on('close', failed);
        res.resume();
      });
      request.on('error', failed);
      request.on('close', () => {
        if (!answered) failed();
      });
      request.end(body);
    });
    // Settling takes an event, so it has not happened yet; the check says so anyway.
    if (req && !settled) this.active.set(req, posting);
    return posting;
  }
}
