/**
 * The browser pages in a real Chromium (Debian's /usr/bin/chromium, driven
 * by playwright-core), against the built service started as its own process:
 * the try-it page at / loads with no console error and no failed request;
 * a fixture uploaded on it shows the service's prediction; the model run in
 * the page with TF.js agrees with the service on one fixture of every class,
 * for both models; a catalog photo goes through the page's approximate
 * conversion path and is compared (agreement there is not asserted: the
 * page only approximates the service's resize and sharpen); a photo dropped on the drop zone is classified; the
 * out-of-distribution flag and an abstention are rendered when an answer has
 * them; choosing a model or an experiment arm forces it; an API error reads
 * as its code and message; feedback sent from the page shows up
 * in its A/B panel, which renders the report of GET /v1/ab; /docs renders
 * every route of the OpenAPI document with Swagger UI; with TRY_IT_PAGE=off,
 * / answers 404 while /docs stays.
 *
 * Every wait is on the page (a selector, an attribute the page sets when it
 * is done) or on the service's readiness; no sleeps. Skipped, with the
 * reason, only where Chromium is not installed.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import sharp from 'sharp';
import { FIXTURES, fixtureBytes, fixtureImages, ROOT } from '../helpers';
import { type ServiceProcess, startServiceProcess } from '../support/processes';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (Debian package chromium): no browser to drive`;

/** Everything that went wrong on a page: console errors, uncaught errors, failed requests, error answers. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.method()} ${r.url()} (${r.failure()?.errorText})`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  return problems;
}

type Data = Record<string, string | undefined>;
// The callbacks run in the page; this project's tsconfig has no DOM types, so they take `any`.
const dataOf = (page: Page, selector: string): Promise<Data> => page.$eval(selector, (e: any) => ({ ...e.dataset }));

/** Wait for an element in this state; the page marks its state in data attributes (an empty result box is still "attached"). */
const reached = (page: Page, selector: string) => page.waitForSelector(selector, { state: 'attached' });

/** A file made by the test. */
interface Photo {
  name: string;
  mimeType: string;
  buffer: Buffer;
}

interface Shown {
  result: Data;
  browser?: Data;
  text: string;
}

/**
 * Upload a fixture on the page (or, without `file`, press Classify again);
 * resolves with the service's answer as the page shows it, and the
 * browser's when `browser`.
 */
async function classifyOnPage(page: Page, file: string | Photo | undefined, browser = false): Promise<Shown> {
  const n = Number((await page.getAttribute('#result', 'data-request')) ?? 0) + 1;
  if (typeof file === 'string') await page.setInputFiles('#file', path.join(FIXTURES, file));
  else if (file) await page.setInputFiles('#file', file);
  else await page.click('#classify-button');
  await reached(page, `#result[data-request="${n}"]:is([data-state="done"], [data-state="error"])`);
  const result = await dataOf(page, '#result');
  const text = (await page.textContent('#classify-panel')) ?? '';
  assert.equal(result.state, 'done', `${file}: ${await page.textContent('#classify-error')}`);
  if (!browser) return { result, text };
  await reached(page, `#browser-result[data-request="${n}"]:is([data-state="done"], [data-state="error"])`);
  const inBrowser = await dataOf(page, '#browser-result');
  assert.equal(inBrowser.state, 'done', `${file}: ${await page.textContent('#browser-result')}`);
  return { result, browser: inBrowser, text };
}

async function api<T>(svc: ServiceProcess, route: string, init?: RequestInit): Promise<T> {
  const res = await fetch(`${svc.http}${route}`, init);
  assert.equal(res.status, 200, `${route}: ${res.status}`);
  return (await res.json()) as T;
}

/** The service's own answer for a fixture, for the page to be compared with. */
async function classifyViaApi(
  svc: ServiceProcess,
  file: string,
  fields: Record<string, string>,
): Promise<{ model: string; arm: string; label: string }> {
  const form = new FormData();
  form.append('image', new Blob([fixtureBytes(file)]), file);
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return api(svc, '/v1/classify', { method: 'POST', body: form });
}

/** One fixture of every class, the first of each in labels.json. */
function onePerClass(): { file: string; label: string }[] {
  const seen = new Set<number>();
  return fixtureImages().filter((f) => !seen.has(f.labelIndex) && seen.add(f.labelIndex));
}

describe('the browser pages in Chromium', { skip }, () => {
  let svc: ServiceProcess;
  let browser: Browser;

  before(async () => {
    assert.ok(
      existsSync(path.join(ROOT, 'dist', 'web', 'index.html')) && existsSync(path.join(ROOT, 'dist', 'web', 'app.js')),
      'dist/web/ is not built: run node scripts/build-web.mjs (part of npm run build)',
    );
    [svc, browser] = await Promise.all([startServiceProcess(), chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })]);
  });

  after(async () => {
    await browser?.close();
    await svc?.stop();
  });

  /** A fresh page (its own context: no storage shared between tests) with its problems watched. */
  async function open(route = '/'): Promise<{ page: Page; problems: string[] }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = watch(page);
    const res = await page.goto(`${svc.http}${route}`);
    assert.equal(res?.status(), 200, `GET ${route}`);
    return { page, problems };
  }

  it('loads / with no console error and no failed request, under the pages policy, and renders the A/B report', async () => {
    const { page, problems } = await open('/');
    const csp = (await page.request.get(`${svc.http}/`)).headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self'/, 'the page is served under its Content-Security-Policy');
    assert.doesNotMatch(csp, /unsafe-eval/);

    await reached(page, '#ab-report[data-state="done"]');
    const report = await api<{ experiment: { experiment: string; arms: { name: string; model: string; assigned: number }[] } | null }>(
      svc,
      '/v1/ab',
    );
    const panel = (await page.textContent('#ab-panel')) ?? '';
    if (report.experiment) {
      assert.ok(panel.includes(`Experiment ${report.experiment.experiment}`), panel);
      const rows = await page.$$eval('#ab-report table.arms tbody tr', (trs: any[]) =>
        trs.map((tr) => Array.from(tr.children as ArrayLike<any>, (c) => c.textContent as string)),
      );
      assert.deepEqual(
        rows.map((r) => [r[0], r[1]]),
        report.experiment.arms.map((a) => [a.name, a.model]),
        'one row per arm, with its model',
      );
      assert.ok(/Verdict/.test(panel), 'the verdict of the comparison is shown');
    } else {
      assert.ok(panel.includes('No experiment is running'), panel);
    }
    assert.ok(panel.includes('Drift, last 1h'), panel);
    // The routing choices come from the service: every loaded model, every arm.
    const models = await api<{ models: { name: string; version: string }[] }>(svc, '/v1/models');
    const options = await page.$$eval('#model-select option', (os: any[]) => os.map((o) => o.value as string));
    assert.deepEqual(options.sort(), models.models.map((m) => `${m.name}/${m.version}`).sort());

    await page.click('#ab-refresh');
    await reached(page, '#ab-report[data-loaded="2"][data-state="done"]');
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  it('shows the service prediction for an uploaded fixture, routed by the routing key, and the browser agrees', async () => {
    const { page, problems } = await open('/');
    const fixture = fixtureImages().find((f) => f.file === 't10k-00001.png')!;
    await page.fill('#routing-key', 'shopper-1');
    const expected = await classifyViaApi(svc, fixture.file, { routingKey: 'shopper-1' });
    assert.equal(expected.label, fixture.label, 'the service gets this fixture right');

    const { result, browser: inBrowser, text } = await classifyOnPage(page, fixture.file, true);
    assert.equal(result.label, fixture.label);
    assert.equal(result.model, expected.model, 'the routing key routes the page as it routes the API');
    assert.equal(result.arm, expected.arm);
    assert.ok(text.includes(fixture.label) && /confident/.test(text) && /inference/.test(text), text);
    assert.equal(await page.locator('#result .bars li').count(), 5, 'the top 5 as bars (the page asks for topK 5)');
    assert.ok(await page.isVisible('#preview'), 'the photo is previewed');
    assert.equal(inBrowser?.model, expected.model);
    assert.equal(inBrowser?.agree, 'true');
    assert.equal(inBrowser?.path, 'passthrough');
    const ood = await page.locator('#result .ood').count();
    assert.equal(ood, 'ood' in expected ? 1 : 0, 'the out-of-distribution line is there exactly when the answer has an ood field');
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  it('runs each model in the browser and agrees with the service on a fixture of every class; choosing a model forces it', async () => {
    const { page, problems } = await open('/');
    await page.check('#route-model');
    const fixtures = onePerClass();
    assert.equal(fixtures.length, 10);
    for (const model of ['baseline/1', 'dendritic/1']) {
      await page.selectOption('#model-select', model);
      for (const f of fixtures) {
        const { result, browser: inBrowser } = await classifyOnPage(page, f.file, true);
        assert.equal(`${result.model}/${result.version}`, model, `${f.file}: the chosen model answered`);
        assert.equal(result.arm, 'explicit');
        assert.equal(`${inBrowser?.model}/${inBrowser?.version}`, model, `${f.file}: the browser ran the same model`);
        assert.equal(inBrowser?.label, result.label, `${f.file} with ${model}: the browser's top label is the service's`);
        assert.equal(inBrowser?.agree, 'true');
        assert.ok(Number(inBrowser?.maxDiff) < 1e-4, `${f.file} with ${model}: probabilities differ by ${inBrowser?.maxDiff}`);
      }
    }
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  it('runs a catalog photo (dark item on white, 460x400 JPEG) through the conversion path in the browser, marked as an approximation', async () => {
    const { page, problems } = await open('/');
    // A Fashion-MNIST item made to look like a catalog photo: negated, enlarged, off-centre on a white background.
    const item = await sharp(fixtureBytes('t10k-00001.png'))
      .negate()
      .resize(300, 300, { kernel: 'lanczos3' })
      .toColourspace('srgb')
      .png()
      .toBuffer();
    const buffer = await sharp(item)
      .extend({ top: 40, bottom: 60, left: 90, right: 70, background: { r: 255, g: 255, b: 255 } })
      .jpeg({ quality: 90 })
      .toBuffer();
    const { result, browser: inBrowser } = await classifyOnPage(page, { name: 'catalog-photo.jpg', mimeType: 'image/jpeg', buffer }, true);
    assert.equal(inBrowser?.path, 'converted', 'a photo is converted in the browser, not passed through');
    assert.equal(inBrowser?.model, result.model);
    assert.ok(['true', 'false'].includes(inBrowser?.agree ?? ''), 'the page compares the two answers');
    assert.match((await page.textContent('#browser-result')) ?? '', /only approximates the service/);
    assert.match((await page.textContent('#browser-panel')) ?? '', /approximation/);
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  it('classifies a photo dropped on the drop zone', async () => {
    const { page, problems } = await open('/');
    await page.uncheck('#browser-auto');
    const fixture = fixtureImages().find((f) => f.file === 't10k-00002.png')!;
    const dataTransfer = await page.evaluateHandle(
      ({ b64, name }) => {
        const page = globalThis as any; // runs in the page
        const dt = new page.DataTransfer();
        dt.items.add(new page.File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, { type: 'image/png' }));
        return dt;
      },
      { b64: fixtureBytes(fixture.file).toString('base64'), name: fixture.file },
    );
    await page.dispatchEvent('#dropzone', 'dragenter', { dataTransfer });
    await page.dispatchEvent('#dropzone', 'drop', { dataTransfer });
    await reached(page, '#result[data-request="1"][data-state="done"]');
    assert.equal(await page.getAttribute('#result', 'data-label'), fixture.label);
    assert.ok(((await page.textContent('#preview-caption')) ?? '').includes(fixture.file), 'the dropped photo is previewed');
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  it('renders the out-of-distribution flag and an abstention when an answer has them', async () => {
    const { page, problems } = await open('/');
    await page.uncheck('#browser-auto');
    // A real answer of the service (taken by the test: Chromium hands an intercepted upload's body to
    // nobody), turned into an abstention as the service gives one: the reason, ood flagged, no label or labelIndex.
    const answer: Record<string, unknown> = { ...(await classifyViaApi(svc, 't10k-00001.png', { topK: '5' })) };
    delete answer.label;
    delete answer.labelIndex;
    await page.route('**/v1/classify', (route) =>
      route.fulfill({
        json: {
          ...answer,
          ood: { score: 0.91, threshold: 0.5, flagged: true },
          abstained: 'out-of-distribution',
        },
      }),
    );
    const shown = await classifyOnPage(page, 't10k-00001.png');
    assert.match(
      (await page.textContent('#result .ood[data-flagged="true"]')) ?? '',
      /Out of distribution.*score 0\.910 > threshold 0\.500/,
    );
    assert.match((await page.textContent('#result .abstained')) ?? '', /abstained \(out-of-distribution: the photo looks unlike/);
    assert.equal(await page.textContent('#result .answer .label'), 'no label (abstained: out-of-distribution)');
    assert.equal(shown.result.label, '', 'no label in the result');
    assert.equal(shown.result.abstained, 'out-of-distribution');
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  it('choosing an arm of the experiment sends its model', async (t) => {
    const report = await api<{ experiment: { arms: { name: string; model: string }[] } | null }>(svc, '/v1/ab');
    if (!report.experiment) return t.skip('no experiment is running (no routing config)');
    const { page, problems } = await open('/');
    await reached(page, '#ab-report[data-state="done"]');
    await page.uncheck('#browser-auto');
    await classifyOnPage(page, 't10k-00002.png');
    await page.check('#route-arm');
    for (const arm of report.experiment.arms) {
      await page.selectOption('#arm-select', arm.name);
      const { result } = await classifyOnPage(page, undefined); // the same photo, classified again
      assert.equal(result.model, arm.model, `arm ${arm.name}`);
      assert.equal(result.arm, 'explicit', 'a named model bypasses the experiment');
    }
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  it('shows an API error as its code and message', async () => {
    const { page } = await open('/');
    await page.setInputFiles('#file', path.join(ROOT, 'README.md'));
    await reached(page, '#result[data-state="error"]');
    const message = (await page.textContent('#classify-error')) ?? '';
    assert.ok(await page.isVisible('#classify-error'));
    assert.match(message, /UNSUPPORTED_MEDIA_TYPE \(HTTP 415\): the file is text/);
    await page.context().close();
  });

  it('sends feedback from the page and its A/B panel then shows it counted', async () => {
    const { page, problems } = await open('/');
    await reached(page, '#ab-report[data-loaded="1"]');
    await page.fill('#routing-key', 'shopper-8');
    await page.uncheck('#browser-auto');
    const { result } = await classifyOnPage(page, 't10k-00007.png');
    // The page rereads the report after a classification (it marks the report loading as it shows the answer), and after feedback.
    await reached(page, '#ab-report[data-state="done"]');
    const loaded = Number(await page.getAttribute('#ab-report', 'data-loaded'));
    await page.selectOption('#feedback-label', 'Shirt');
    await page.click('#feedback-button');
    await page.waitForSelector('#feedback-result:has-text("Recorded")');
    await reached(page, `#ab-report[data-loaded="${loaded + 1}"][data-state="done"]`);
    const report = await api<{ accuracy: Record<string, { model: string; arm: string; figures: { labelled: number } }[]> }>(svc, '/v1/ab');
    const row = report.accuracy['1h'].find((r) => r.model === result.model && r.arm === result.arm);
    assert.ok(row && row.figures.labelled >= 1, 'the service counted the feedback');
    const shown = await page.$$eval('#ab-report table', (tables: any[]) =>
      tables.flatMap((t) =>
        Array.from(t.querySelectorAll('tbody tr') as ArrayLike<any>, (tr) =>
          Array.from(tr.children as ArrayLike<any>, (c) => (c.textContent ?? '') as string),
        ),
      ),
    );
    assert.ok(
      shown.some((cells) => cells[0] === `${row.model} / ${row.arm}` && cells[1] === String(row.figures.labelled)),
      `the accuracy table shows ${row.model} / ${row.arm} with ${row.figures.labelled} labels: ${JSON.stringify(shown)}`,
    );
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  it('renders every route of the OpenAPI document at /docs with Swagger UI', async () => {
    const doc = await api<{ paths: Record<string, unknown> }>(svc, '/openapi.json');
    const { page, problems } = await open('/docs');
    await page.waitForSelector('.opblock-summary-path[data-path="/v1/classify"]');
    const classify = (await page.textContent('.opblock-summary-path[data-path="/v1/classify"]')) ?? '';
    assert.equal(classify.replace(/\u200b/g, ''), '/v1/classify', 'the text /v1/classify is on the page');
    const rendered = await page.$$eval('.opblock-summary-path', (els: any[]) => els.map((e) => e.getAttribute('data-path') as string));
    assert.deepEqual([...new Set(rendered)].sort(), Object.keys(doc.paths).sort(), 'one rendering per path of the document');
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  it('with TRY_IT_PAGE=off, / answers 404 and /docs stays', async () => {
    const off = await startServiceProcess({ TRY_IT_PAGE: 'off' });
    try {
      const page = await browser.newPage();
      const res = await page.goto(`${off.http}/`);
      assert.equal(res?.status(), 404);
      assert.equal((await fetch(`${off.http}/ui/app.js`)).status, 404);
      const docs = await page.goto(`${off.http}/docs`);
      assert.equal(docs?.status(), 200);
      await page.close();
    } finally {
      await off.stop();
    }
  });
});
