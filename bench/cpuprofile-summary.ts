/**
 * Where the time went in a V8 CPU profile (`node --cpu-prof`): self time by
 * function and by package, in percent of the profile. Used to explain the
 * benchmark's shortfalls, e.g. for the HTTP path:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/src/main.js &   # then load it (npm run bench, autocannon), stop with SIGINT
 *   node dist/bench/cpuprofile-summary.js /tmp/prof/CPU.*.cpuprofile [top]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** node_modules package, our compiled file, a Node.js internal module, or a V8 pseudo-frame like (garbage collector). */
function packageOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (inModules) return inModules[1];
  const ours = /\/dist\/(.*)$/.exec(url);
  if (ours) return `ours: ${ours[1]}`;
  if (url.startsWith('node:')) return url;
  return url || functionName || '(unknown)';
}

export function summarize(profile: Profile, top = 30): string {
  const time = new Map<number, number>();
  profile.samples.forEach((id, i) => time.set(id, (time.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...time.values()].reduce((a, b) => a + b, 0) || 1;
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  for (const node of profile.nodes) {
    const t = time.get(node.id) ?? 0;
    if (t === 0) continue;
    const f = node.callFrame;
    const where = f.url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, '');
    const fn = `${f.functionName || '(anonymous)'} ${where}${where ? `:${f.lineNumber + 1}` : ''}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + t);
    const pkg = packageOf(f);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + t);
  }
  const table = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, t]) => `${((100 * t) / total).toFixed(1).padStart(6)}%  ${k}`)
      .join('\n');
  return `profile: ${(total / 1e6).toFixed(1)} s\n\nby package or file:\n${table(byPackage)}\n\nby function:\n${table(byFunction)}\n`;
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/bench/cpuprofile-summary.js <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  process.stdout.write(summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(process.argv[3] ?? 30)));
}
