/**
 * Traffic replay: stream the official test set (or a folder of images) to a
 * running service with routing keys, send ground truth back, inject drift.
 *
 *   npm run replay -- --rate 50 --count 5000 --feedback 0.5 --drift rotate:30,blur:1.5 --drift-from 2500
 *
 * Progress goes to stderr, the summary to stdout (JSON with --json).
 */
import { grpcClient, httpClient } from './replay/clients';
import { OptionsError, parseOptions, type ReplayOptions, USAGE } from './replay/options';
import { type ReplayProgress, type ReplaySummary, replay } from './replay/replay';
import { folderSource, testSetSource } from './replay/source';

function progressLine(p: ReplayProgress, total: number): string {
  const acc = p.accuracy === null ? '-' : `${(100 * p.accuracy).toFixed(1)}%`;
  return `replay ${p.elapsedSeconds.toFixed(0).padStart(4)} s  ${p.sent}/${total} sent  ${p.answered} answered  ${p.failed} failed  ${p.ratePerSecond.toFixed(1)} req/s  top-1 ${acc}  feedback ${p.feedbackSent}${p.drifting ? '  DRIFT ON' : ''}`;
}

function report(s: ReplaySummary): string {
  const lines = [
    `${s.answered}/${s.sent} answered in ${s.seconds.toFixed(1)} s (${s.ratePerSecond.toFixed(1)}/s) over ${s.transport} ${s.target}, source ${s.source}`,
  ];
  if (s.latencyMs)
    lines.push(
      `latency ms: p50 ${s.latencyMs.p50.toFixed(1)}  p95 ${s.latencyMs.p95.toFixed(1)}  p99 ${s.latencyMs.p99.toFixed(1)}  max ${s.latencyMs.max.toFixed(1)}`,
    );
  if (s.failed) lines.push(`failed: ${s.failed} ${JSON.stringify(s.errors)}`);
  if (s.driftStartedAt !== null) lines.push(`drift from request ${s.driftStartedAt}: ${s.drifted} drifted requests`);
  for (const a of s.arms) {
    lines.push(
      `  ${a.phase.padEnd(8)} arm ${a.arm.padEnd(12)} model ${a.model.padEnd(12)} ${String(a.answered).padStart(6)} answers  top-1 ${(a.answered > a.abstained ? (100 * a.correct) / (a.answered - a.abstained) : 0).toFixed(2)}%${a.abstained ? ` of ${a.answered - a.abstained} labelled (${a.abstained} abstained)` : ''}  mean confidence ${(100 * a.meanConfidence).toFixed(2)}%`,
    );
  }
  const f = s.feedback;
  lines.push(
    `feedback: ${f.sent} sent, ${f.accepted} counted, ${f.duplicates} duplicates, ${f.failed} failed${f.failed ? ` ${JSON.stringify(f.errors)}` : ''}`,
  );
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  let opts: ReplayOptions;
  try {
    opts = parseOptions(argv);
  } catch (err) {
    if (err instanceof OptionsError) {
      process.stderr.write(`replay: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  const client = opts.transport === 'grpc' ? grpcClient(opts.target) : httpClient(opts.target);
  try {
    const labels = await client.labels();
    const source = opts.images ? folderSource(opts.images, labels) : testSetSource(labels.length);
    const tty = process.stderr.isTTY;
    let lastLine = 0;
    const summary = await replay(opts, {
      client,
      source,
      sourceName: opts.images ?? 'Fashion-MNIST test set',
      labels,
      onProgress: opts.quiet
        ? undefined
        : (p) => {
            // One line a second on a terminal, one every 10 s in a log.
            if (tty) process.stderr.write(`\r${progressLine(p, opts.count)}\x1b[K`);
            else if (p.elapsedSeconds - lastLine >= 10) {
              lastLine = p.elapsedSeconds;
              process.stderr.write(`${progressLine(p, opts.count)}\n`);
            }
          },
    });
    if (!opts.quiet && tty) process.stderr.write('\n');
    process.stdout.write(opts.json ? `${JSON.stringify(summary, null, 2)}\n` : `${report(summary)}\n`);
    return summary.answered > 0 ? 0 : 1;
  } catch (err) {
    process.stderr.write(`replay: ${(err as Error).message}\n`);
    return 1;
  } finally {
    client.close();
  }
}

void main(process.argv.slice(2)).then((code) => process.exit(code));
