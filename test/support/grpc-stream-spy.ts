/**
 * Watches the server side of a streaming gRPC method of an in-process
 * service, so a test can check the flow-control rules of ClassifyStream
 * (src/transport/grpc/stream.ts) on every message instead of after a sleep:
 *
 *  - a message is read only while fewer than `window` answers are pending;
 *  - no message is read while the server waits for the client to take
 *    answers (its write() returned false and 'drain' has not come);
 *
 * and wait for the events that show where a reader that takes nothing left
 * the server: its first write() that returns false, or its last answer
 * written (the transport below grpc-js may buffer every answer: how much it
 * takes is not the service's to decide).
 *
 * The service offers no hook for this (a stream-level event such as
 * "paused: window full / waiting for drain" would replace it); this wraps
 * the handler @grpc/grpc-js registered for the method (the Server's private
 * `handlers` map), and fails loudly if that changes.
 */
import type * as grpc from '@grpc/grpc-js';

export interface ServerStreamSpy {
  /** Messages the server has read, answers it has written, writes that returned false. */
  reads: number;
  writes: number;
  blocked: number;
  /** Each broken rule, as it happened. */
  readonly violations: string[];
  /** Resolves the first time the server's write() returns false: it now waits for the client. */
  readonly firstBlocked: Promise<void>;
  /** Resolves once the server has written `n` answers. */
  wrote(n: number): Promise<void>;
  restore(): void;
}

type Handler = { func: (call: grpc.ServerDuplexStream<unknown, unknown>) => void };

export function spyOnServerStream(server: grpc.Server, method: string, window: number): ServerStreamSpy {
  const handler = (server as unknown as { handlers?: Map<string, Handler> }).handlers?.get(method);
  if (!handler || typeof handler.func !== 'function') {
    throw new Error(`no handler for ${method} in the @grpc/grpc-js Server: its private 'handlers' map has changed`);
  }
  const original = handler.func;
  let blocked: () => void = () => undefined;
  const writeWaiters: { n: number; resolve: () => void }[] = [];
  const spy: ServerStreamSpy = {
    reads: 0,
    writes: 0,
    blocked: 0,
    violations: [],
    firstBlocked: new Promise<void>((resolve) => (blocked = resolve)),
    wrote: (n) =>
      new Promise<void>((resolve) => {
        if (spy.writes >= n) resolve();
        else writeWaiters.push({ n, resolve });
      }),
    restore: () => {
      handler.func = original;
    },
  };
  handler.func = (call) => {
    // Added before the handler's own listener: sees each message as it is read, before it is handled.
    call.on('data', () => {
      const pending = spy.reads - spy.writes;
      if (call.writableNeedDrain) spy.violations.push(`message ${spy.reads} read while the server waited for the client to take answers`);
      if (pending >= window) spy.violations.push(`message ${spy.reads} read with ${pending} answers pending (window ${window})`);
      spy.reads++;
    });
    const write = call.write.bind(call) as (...args: unknown[]) => boolean;
    call.write = ((...args: unknown[]) => {
      spy.writes++;
      const ok = write(...args);
      if (!ok) {
        spy.blocked++;
        blocked();
      }
      for (const w of writeWaiters) if (spy.writes >= w.n) w.resolve();
      return ok;
    }) as typeof call.write;
    original(call);
  };
  return spy;
}
