/**
 * The hostile-input corpus (test/support/hostile-corpus.ts) against a running
 * service, over HTTP and gRPC: each case gets its status and code with a
 * message saying what was wrong, odd-but-valid images are classified, no
 * answer shows a stack or an internal path, no log line carries a payload or
 * a secret, and the service still answers afterwards.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createService } from '../../src/service';
import { clients, type Clients } from '../grpc-clients';
import { testConfig } from '../helpers';
import { type Corpus, hostileCorpus } from '../support/hostile-corpus';
import { send, sendCorpus } from '../support/hostile-client';

const ADMIN_TOKEN = 'hostile-test-admin-token-0123456789';
const RECEIPT_SECRET = 'hostile-test-receipt-secret-0123456789';
const LIMITS = { maxImageBytes: 1024 * 1024, maxJsonBytes: 2 * 1024 * 1024, maxBatchImages: 16, grpcMaxMessageBytes: 2 * 1024 * 1024 };
describe('hostile input', () => {
  let service: Awaited<ReturnType<typeof createService>>;
  let port: number;
  let grpcClients: Clients;
  let corpus: Corpus;
  const logLines: string[] = [];

  before(async () => {
    const logStream = new Writable({
      write(chunk, _enc, cb) {
        logLines.push(String(chunk));
        cb();
      },
    });
    const config = testConfig({
      ADMIN_TOKEN,
      RECEIPT_SECRET,
      MAX_IMAGE_BYTES: String(LIMITS.maxImageBytes),
      MAX_JSON_BYTES: String(LIMITS.maxJsonBytes),
      CLASSIFY_MAX_IMAGES: String(LIMITS.maxBatchImages),
      GRPC_MAX_MESSAGE_BYTES: String(LIMITS.grpcMaxMessageBytes),
      LOG_LEVEL: 'info',
    });
    service = await createService(config, pino({ level: 'info' }, logStream));
    const ports = await service.start();
    port = ports.httpPort;
    grpcClients = clients(ports.grpcPort);
    corpus = await hostileCorpus({ ...LIMITS, receiptSecret: RECEIPT_SECRET, feedbackMaxAgeHours: config.feedbackMaxAgeHours });
  });

  after(async () => {
    grpcClients?.close();
    await service?.stop();
  });

  const section = (name: string, s: Parameters<typeof sendCorpus>[2]) => {
    it(name, async () => {
      assert.ok((await sendCorpus(corpus, { port, grpc: grpcClients }, s)) > 0);
    });
  };
  section('answers every file case the same way as multipart, base64 JSON and gRPC bytes', ['files']);
  section('answers every pixel-array case over JSON and gRPC', ['pixels']);
  section('answers every HTTP-only case', ['http']);
  section('answers every gRPC-only case', ['grpc']);
  section('refuses bad model, version and option values on both transports', ['options']);
  section('refuses bad feedback on both transports', ['feedback']);

  it('keeps answering, and logs neither payloads nor secrets', async () => {
    const ok = await send(
      port,
      'POST',
      '/v1/classify',
      { 'content-type': 'application/json' },
      Buffer.from(JSON.stringify({ pixels: new Array(784).fill(0) })),
    );
    assert.equal(ok.status, 200);
    assert.equal((await send(port, 'GET', '/readyz', {})).status, 200);
    const log = logLines.join('');
    assert.ok(logLines.length > 100, 'one line per request');
    assert.ok(!log.includes(ADMIN_TOKEN) && !log.includes(RECEIPT_SECRET), 'no secret in the logs');
    assert.ok(!log.includes('iVBORw0KGgo'), 'no base64 image in the logs');
    assert.ok(!/\[(0,){20}/.test(log), 'no pixel array in the logs');
    assert.ok(!log.includes('not-the-admin-token'), 'no presented token in the logs');
  });
});
