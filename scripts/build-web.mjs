// Builds the browser pages the service serves from dist/web/: the try-it page
// at / (index.html, style.css, app.js) and the API documentation at /docs
// (docs.html, docs.css, docs.js). Type-checks web/ (tsc -p web, DOM types, no
// emit), then bundles web/src/app.ts and web/src/docs.ts with esbuild into
// self-contained scripts (no module loader, no eval: the pages'
// Content-Security-Policy allows neither inline scripts nor eval) and copies
// the static files. The app bundles the service's own pure preprocessing
// steps (src/preprocess/fashion-steps.ts).
//
//   node scripts/build-web.mjs
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const web = path.join(root, 'web');
const out = path.join(root, 'dist', 'web');
const STATIC = ['index.html', 'docs.html', 'style.css', 'docs.css'];

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const checked = spawnSync(process.execPath, [tsc, '-p', web], { cwd: root, stdio: 'inherit' });
if (checked.status !== 0) {
  console.error('build-web: type errors in web/ (tsc -p web)');
  process.exit(checked.status ?? 1);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  entryPoints: { app: path.join(web, 'src', 'app.ts'), docs: path.join(web, 'src', 'docs.ts') },
  outdir: out,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2020',
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
});

for (const file of STATIC) copyFileSync(path.join(web, file), path.join(out, file));
console.log(`build-web: ${path.relative(root, out)}/ {${['app.js', 'docs.js', ...STATIC].join(', ')}}`);
