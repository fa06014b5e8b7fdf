/**
 * Memory under hostile input: the built service (`node dist/src/main.js`)
 * answers the hostile-input corpus (test/support/hostile-corpus.ts: bad
 * files, decompression bombs, a 32 MB JSON body, a 6000x6000 decode, ...)
 * three times over HTTP and gRPC, and after each round its resident (VmRSS)
 * and peak resident (VmHWM) memory are read from /proc.
 *
 * These are figures of this machine, so they live here and not in the test
 * suite (test/e2e/under-load.test.ts checks the answers and that the process
 * stays up). Targets, as the suite used to assert them:
 *  - peak resident memory < 1024 MB: the bombs are refused from their
 *    headers, nothing near their gigabytes is ever allocated;
 *  - no growth from round to round once the first has warmed every path:
 *    resident memory after round 3 < 1.25 x after round 1 + 20 MB.
 *
 *   npm run build && node dist/bench/hostile-memory.js [--rounds 3]
 *
 * Writes bench/results/hostile-memory.json and .md; exits 1 when a target is
 * missed. `npm run bench` (bench/run.ts) runs it too and reports its targets.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clients } from '../test/grpc-clients';
import { sendCorpus } from '../test/support/hostile-client';
import { hostileCorpus } from '../test/support/hostile-corpus';
import { startServiceProcess } from '../test/support/processes';

const ROOT = path.resolve(__dirname, '..', '..');
const RECEIPT_SECRET = 'bench-hostile-memory-receipt-secret';
/** The service's limits, set explicitly so that the corpus probes exactly them. */
const LIMITS = {
  maxImageBytes: 10 * 1024 * 1024,
  maxJsonBytes: 32 * 1024 * 1024,
  maxBatchImages: 256,
  grpcMaxMessageBytes: 32 * 1024 * 1024,
};
const PEAK_LIMIT_MB = 1024;

export interface HostileMemory {
  rounds: { casesSent: number; rssMb: number; peakMb: number }[];
  targets: { target: string; measured: string; met: boolean }[];
}

/** Resident and peak resident memory of a process, in MB. */
function memory(pid: number): { rssMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

export async function hostileMemory(roundCount = 3): Promise<HostileMemory> {
  const svc = await startServiceProcess({
    RECEIPT_SECRET,
    ADMIN_TOKEN: 'bench-hostile-memory-admin-token',
    ROUTING_FILE: '/nonexistent/routing.json',
    MAX_IMAGE_BYTES: String(LIMITS.maxImageBytes),
    MAX_JSON_BYTES: String(LIMITS.maxJsonBytes),
    MAX_BATCH_IMAGES: String(LIMITS.maxBatchImages),
    GRPC_MAX_MESSAGE_BYTES: String(LIMITS.grpcMaxMessageBytes),
  });
  const c = clients(svc.grpcPort);
  const rounds: HostileMemory['rounds'] = [];
  try {
    const corpus = await hostileCorpus({ ...LIMITS, receiptSecret: RECEIPT_SECRET, feedbackMaxAgeHours: 168 });
    const port = Number(new URL(svc.http).port);
    for (let round = 0; round < roundCount; round++) {
      const casesSent = await sendCorpus(corpus, { port, grpc: c });
      rounds.push({ casesSent, ...memory(svc.child.pid!) });
    }
  } finally {
    c.close();
    await svc.stop();
  }
  const first = rounds[0];
  const last = rounds.at(-1)!;
  const peak = Math.max(...rounds.map((r) => r.peakMb));
  const growthBound = first.rssMb * 1.25 + 20;
  return {
    rounds,
    targets: [
      {
        target: `hostile corpus: peak resident memory < ${PEAK_LIMIT_MB} MB`,
        measured: `${peak.toFixed(0)} MB`,
        met: peak < PEAK_LIMIT_MB,
      },
      {
        target: `hostile corpus: resident memory after round ${rounds.length} < 1.25x round 1 + 20 MB`,
        measured: `${rounds.map((r) => r.rssMb.toFixed(0)).join(', ')} MB by round (bound ${growthBound.toFixed(0)} MB)`,
        met: last.rssMb < growthBound,
      },
    ],
  };
}

async function main(): Promise<void> {
  const a = process.argv.slice(2);
  const rounds = a.includes('--rounds') ? Number(a[a.indexOf('--rounds') + 1]) : 3;
  if (!(Number.isInteger(rounds) && rounds >= 2)) throw new Error('--rounds must be an integer >= 2');
  const result = await hostileMemory(rounds);
  const when = new Date().toISOString();
  const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
  const md = [
    `Memory under the hostile-input corpus, ${when} on ${machine}: \`node dist/bench/hostile-memory.js --rounds ${rounds}\`.`,
    '',
    '| round | cases sent | resident MB | peak resident MB |',
    '|---|---|---|---|',
    ...result.rounds.map((r, i) => `| ${i + 1} | ${r.casesSent} | ${r.rssMb.toFixed(0)} | ${r.peakMb.toFixed(0)} |`),
    '',
    '| target | measured | met |',
    '|---|---|---|',
    ...result.targets.map((t) => `| ${t.target} | ${t.measured} | ${t.met ? 'yes' : '**no**'} |`),
    '',
  ].join('\n');
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench/results/hostile-memory.md'), md);
  writeFileSync(path.join(ROOT, 'bench/results/hostile-memory.json'), `${JSON.stringify({ when, machine, ...result }, null, 2)}\n`);
  process.stdout.write(md);
  if (!result.targets.every((t) => t.met)) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`hostile-memory failed: ${(err as Error).stack}\n`);
    process.exit(1);
  });
}
