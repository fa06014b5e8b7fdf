/**
 * The Python client examples in clients/python/, run with Debian's
 * /usr/bin/python3 against the built service started as a separate process
 * (`node dist/src/main.js` on free ports), on real Fashion-MNIST fixtures:
 *
 *   - test_clients.py: their offline unit tests (multipart encoding, the
 *     PNG decoder's five row filters, stub generation with both compilers);
 *   - classify_http.py (standard library only): labels, model, version, arm
 *     and predictionId as the service answers them, --model/--top-k/
 *     --routing-key reaching the service, --feedback accepted, and a clear
 *     error with exit status 1 for a file that is not an image;
 *   - oip_grpc.py (grpcio, stubs generated at run time from
 *     proto/inference/v2/grpc_predict_v2.proto): ServerReady, ModelMetadata,
 *     ModelInfer with decoded UINT8 pixels and with the encoded file, in
 *     typed contents and in raw_input_contents, the same answer each way.
 *
 * The gRPC tests skip, saying why, when /usr/bin/python3 lacks grpcio or
 * grpc_tools (scripts/setup.sh installs python3-grpcio and
 * python3-grpc-tools, so CI runs them).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FIXTURES, fixtureImages, ROOT } from '../helpers';
import { type ServiceProcess, startServiceProcess } from '../support/processes';
import { withTimeout } from '../support/wait';

const PY = '/usr/bin/python3'; // Debian's, where python3-grpcio and python3-grpc-tools live
const CLIENTS = path.join(ROOT, 'clients', 'python');
const HTTP_CLIENT = path.join(CLIENTS, 'classify_http.py');
const OIP_CLIENT = path.join(CLIENTS, 'oip_grpc.py');
const NOT_AN_IMAGE = path.join(ROOT, 'README.md');

// Fixtures both shipped models label right with a confidence above 0.99, so
// the expected label does not hang on a model's borderline call.
const CONFIDENT = ['t10k-00001.png', 't10k-00002.png', 't10k-00012.png', 't10k-00069.png', 't10k-00079.png'];
// One that the baseline gets wrong (an Ankle boot it calls a Sandal): the
// client must report the service's answer, right or wrong.
const MISLABELLED = 't10k-00023.png';

const labelOf = new Map(fixtureImages().map((f) => [f.file, f.label]));
const fixture = (file: string) => path.join(FIXTURES, file);

const pythonMissing = existsSync(PY) ? undefined : `${PY} (Debian's python3) is not installed`;
const grpcMissing =
  pythonMissing ??
  (spawnSync(PY, ['-c', 'import grpc, grpc_tools'], { stdio: 'ignore' }).status === 0
    ? undefined
    : `grpcio or grpc_tools is missing for ${PY}: apt-get install python3-grpcio python3-grpc-tools`);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('Python client examples (clients/python) against the running service', { skip: pythonMissing }, () => {
  let svc: ServiceProcess;
  let cache: string;

  /** `python3 args...` from the repository root, with the stub cache in this test's temporary directory. */
  function python(args: string[], cwd = ROOT): Promise<Run> {
    const child = spawn(PY, args, {
      cwd,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, XDG_CACHE_HOME: cache, PYTHONDONTWRITEBYTECODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const done = new Promise<Run>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    return withTimeout(done, `python3 ${args.join(' ')}`, 120_000).finally(() => child.kill());
  }

  const show = (r: Run) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
  const jsonLines = (r: Run) =>
    r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as any);

  /** The service's own answer for a file, asked for directly (the reference the client's output must match). */
  async function serviceAnswer(file: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<any> {
    const form = new FormData();
    form.append('image', new Blob([readFileSync(file)]), path.basename(file));
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    const res = await fetch(`${svc.http}/v1/classify`, { method: 'POST', body: form, headers });
    assert.equal(res.status, 200);
    return res.json();
  }

  before(async () => {
    cache = mkdtempSync(path.join(os.tmpdir(), 'python-client-'));
    svc = await startServiceProcess();
  });

  after(async () => {
    await svc?.stop();
    rmSync(cache, { recursive: true, force: true });
  });

  it('test_clients.py: the offline unit tests pass', async () => {
    const r = await python(['-m', 'unittest', '-v', 'test_clients'], CLIENTS);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /^OK/m, show(r));
  });

  describe('classify_http.py (HTTP, standard library only)', () => {
    it('prints each fixture’s label, confidence, model, version, arm and predictionId', async () => {
      const r = await python([HTTP_CLIENT, '--url', svc.http, ...CONFIDENT.map(fixture)]);
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stderr, '', show(r));
      for (const file of CONFIDENT) {
        const label = labelOf.get(file)!;
        const block = new RegExp(
          `${file}: ${label.replace(/[/]/g, '\\/')} \\(confidence 0\\.9\\d{3}\\)\\n` +
            '  model (baseline|dendritic) version \\d+ arm (default|baseline|dendritic)\\n' +
            '  top: .+\\n' +
            '  predictionId [A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\n',
        );
        assert.match(r.stdout, block, show(r));
      }
    });

    it('--model, --top-k and --json: exactly the service’s answer, even a wrong one', async () => {
      const files = [...CONFIDENT, MISLABELLED];
      const r = await python([
        HTTP_CLIENT,
        '--url',
        `${svc.http}/`,
        '--model',
        'baseline',
        '--top-k',
        '2',
        '--json',
        ...files.map(fixture),
      ]);
      assert.equal(r.code, 0, show(r));
      const lines = jsonLines(r);
      assert.equal(lines.length, files.length);
      for (const [i, file] of files.entries()) {
        const got = lines[i].classification;
        const want = await serviceAnswer(fixture(file), { model: 'baseline', topK: '2' });
        assert.equal(lines[i].file, fixture(file));
        assert.equal(got.model, 'baseline');
        assert.equal(got.arm, 'explicit');
        assert.equal(got.top.length, 2);
        assert.deepEqual([got.label, got.version, got.confidence], [want.label, want.version, want.confidence], file);
        if (file !== MISLABELLED) assert.equal(got.label, labelOf.get(file), file);
      }
      assert.notEqual(lines.at(-1).classification.label, labelOf.get(MISLABELLED), 'the baseline still mislabels the reference fixture');
    });

    it('--routing-key reaches the service: the same A/B arm the service gives that key', async () => {
      for (const key of ['shopper-1', 'shopper-2', 'shopper-8']) {
        const r = await python([HTTP_CLIENT, '--url', svc.http, '--routing-key', key, '--json', fixture(CONFIDENT[0])]);
        assert.equal(r.code, 0, show(r));
        const got = jsonLines(r)[0].classification;
        const want = await serviceAnswer(fixture(CONFIDENT[0]), {}, { 'X-Routing-Key': key });
        assert.deepEqual([got.model, got.arm], [want.model, want.arm], key);
      }
    });

    it('--feedback sends the true label for each predictionId, and the service accepts it', async () => {
      const files = CONFIDENT.slice(0, 2); // Pullover, Trouser: feedback "Pullover" is right for one, wrong for the other
      const r = await python([HTTP_CLIENT, '--url', svc.http, '--model', 'baseline', '--feedback', 'Pullover', ...files.map(fixture)]);
      assert.equal(r.code, 0, show(r));
      assert.equal(labelOf.get(files[0]), 'Pullover');
      assert.match(r.stdout, /t10k-00001\.png: Pullover [^]*?\n {2}feedback Pullover: accepted, correct\n/, show(r));
      assert.match(r.stdout, /t10k-00002\.png: Trouser [^]*?\n {2}feedback Pullover: accepted, wrong, predicted Trouser\n/, show(r));

      const j = await python([HTTP_CLIENT, '--url', svc.http, '--json', '--feedback', '2', fixture(files[0])]);
      assert.equal(j.code, 0, show(j));
      const { classification, feedback } = jsonLines(j)[0];
      assert.deepEqual(
        [feedback.accepted, feedback.correct, feedback.label, feedback.model, feedback.arm],
        [true, true, 'Pullover', classification.model, classification.arm],
      );
    });

    it('a file that is not an image: the service’s error on stderr, the other images still classified, exit 1', async () => {
      const r = await python([HTTP_CLIENT, '--url', svc.http, fixture(CONFIDENT[0]), NOT_AN_IMAGE]);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stdout, /t10k-00001\.png: Pullover /, show(r));
      assert.match(
        r.stderr,
        /^error: \S+README\.md: UNSUPPORTED_MEDIA_TYPE \(HTTP 415\): the file is text; send a PNG, JPEG, WebP, GIF, TIFF or AVIF image \(request [0-9a-f-]+\)$/m,
        show(r),
      );
      assert.doesNotMatch(r.stderr, /Traceback/, show(r));
    });

    it('an unknown model, a wrong feedback label, an unreachable service: clear errors, exit 1', async () => {
      const model = await python([HTTP_CLIENT, '--url', svc.http, '--model', 'nope', fixture(CONFIDENT[0])]);
      assert.equal(model.code, 1, show(model));
      assert.match(model.stderr, /NOT_FOUND \(HTTP 404\): unknown model "nope"/, show(model));

      const label = await python([HTTP_CLIENT, '--url', svc.http, '--feedback', 'Spaceship', fixture(CONFIDENT[0])]);
      assert.equal(label.code, 1, show(label));
      assert.match(label.stderr, /feedback: INVALID_ARGUMENT \(HTTP 400\): .*Spaceship/, show(label));

      const gone = await python([HTTP_CLIENT, '--url', 'http://127.0.0.1:1', fixture(CONFIDENT[0])]); // nothing listens on port 1
      assert.equal(gone.code, 1, show(gone));
      assert.match(gone.stderr, /UNREACHABLE: cannot reach http:\/\/127\.0\.0\.1:1\/v1\/classify: .*Connection refused/, show(gone));
      for (const r of [model, label, gone]) assert.doesNotMatch(r.stderr, /Traceback/, show(r));
    });
  });

  describe('oip_grpc.py (Open Inference Protocol over gRPC, grpcio)', { skip: grpcMissing }, () => {
    const target = () => `127.0.0.1:${svc.grpcPort}`;

    it('ServerReady, ModelMetadata and ModelInfer: each fixture’s label, from stubs generated at run time', async () => {
      const r = await python([OIP_CLIENT, '--target', target(), '--model', 'baseline', ...CONFIDENT.map(fixture)]);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, /^server ready: True$/m, show(r));
      assert.match(
        r.stdout,
        /^model baseline: versions \d+(, \d+)*; platform onnxruntime_onnx; inputs input FP32 \[-1, 1, 28, 28\], pixels UINT8 \[-1, 28, 28\], image BYTES \[-1\]$/m,
        show(r),
      );
      for (const file of CONFIDENT) {
        const label = labelOf.get(file)!.replace(/[/]/g, '\\/');
        assert.match(
          r.stdout,
          new RegExp(
            `${file}: ${label} \\(label_index \\d, probability 0\\.9\\d{3}\\)\\n {2}model baseline version \\d+ predictionId \\S+`,
          ),
          show(r),
        );
      }
      // The stubs were generated into this test's cache, not into the repository.
      const entries = readdirSync(path.join(cache, 'product-classifier', 'oip-stubs'));
      assert.equal(entries.length, 1, entries.join(', '));
      assert.match(readFileSync(path.join(cache, 'product-classifier', 'oip-stubs', entries[0], 'GENERATED_BY'), 'utf8'), /protoc/);
    });

    it('decoded pixels and the encoded file, in contents and in raw_input_contents, by either protoc: the same answer', async () => {
      const files = [...CONFIDENT, MISLABELLED].map(fixture);
      const ways = [
        [],
        ['--raw'],
        ['--input', 'image'],
        ['--input', 'image', '--raw'],
        ['--protoc', 'bundled'],
        ['--protoc', 'bundled', '--raw'],
      ];
      const answers: any[][] = [];
      for (const way of ways) {
        const r = await python([OIP_CLIENT, '--target', target(), '--model', 'dendritic', '--json', ...way, ...files]);
        assert.equal(r.code, 0, `${way.join(' ')}: ${show(r)}`);
        answers.push(jsonLines(r));
      }
      const reference = answers[0];
      for (const [i, file] of files.entries()) {
        assert.equal(reference[i].file, file);
        assert.equal(reference[i].model, 'dendritic');
        assert.equal(reference[i].probabilities.length, 10);
        if (!file.endsWith(MISLABELLED)) assert.equal(reference[i].label, labelOf.get(path.basename(file)), file);
        const want = await serviceAnswer(file, { model: 'dendritic' });
        assert.equal(reference[i].label, want.label, `${file}: the gRPC answer agrees with /v1/classify`);
        assert.ok(
          Math.abs(reference[i].probability - want.confidence) < 1e-4,
          `${file}: ${reference[i].probability} vs ${want.confidence}`,
        );
        for (const [w, got] of answers.entries()) {
          assert.equal(got[i].label, reference[i].label, `${ways[w].join(' ')}: ${file}`);
          assert.equal(got[i].label_index, reference[i].label_index);
          const gap = Math.max(...got[i].probabilities.map((p: number, k: number) => Math.abs(p - reference[i].probabilities[k])));
          assert.ok(gap < 1e-3, `${ways[w].join(' ')}: ${file}: probabilities differ by ${gap}`);
        }
      }
    });

    it('its prediction_id is a receipt /v1/feedback accepts', async () => {
      const r = await python([OIP_CLIENT, '--target', target(), '--json', fixture(CONFIDENT[1])]);
      assert.equal(r.code, 0, show(r));
      const { prediction_id: predictionId, label } = jsonLines(r)[0];
      const res = await fetch(`${svc.http}/v1/feedback`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ predictionId, label: labelOf.get(CONFIDENT[1]) }),
      });
      const body = (await res.json()) as any;
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.deepEqual([body.accepted, body.correct, body.predicted], [true, true, label]);
    });

    it('a file that is not an image, as pixels or as BYTES, and an unknown model: clear errors, exit 1', async () => {
      const pixels = await python([OIP_CLIENT, '--target', target(), fixture(CONFIDENT[0]), NOT_AN_IMAGE]);
      assert.equal(pixels.code, 1, show(pixels));
      assert.match(pixels.stdout, /t10k-00001\.png: Pullover /, show(pixels));
      assert.match(pixels.stderr, /^error: \S+README\.md: not a PNG file \(no PNG signature\)/m, show(pixels));

      const bytes = await python([OIP_CLIENT, '--target', target(), '--input', 'image', NOT_AN_IMAGE]);
      assert.equal(bytes.code, 1, show(bytes));
      assert.match(
        bytes.stderr,
        /^error: \S+README\.md: INVALID_ARGUMENT \(x-error-code UNSUPPORTED_MEDIA_TYPE\): .*the file is text/m,
        show(bytes),
      );

      const model = await python([OIP_CLIENT, '--target', target(), '--model', 'nope', fixture(CONFIDENT[0])]);
      assert.equal(model.code, 1, show(model));
      assert.match(model.stderr, /^error: 127\.0\.0\.1:\d+: NOT_FOUND: unknown model "nope"/m, show(model));
      for (const r of [pixels, bytes, model]) assert.doesNotMatch(r.stderr, /Traceback/, show(r));
    });
  });
});
