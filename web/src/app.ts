/**
 * The try-it page at `/`: classify a product photo with the service
 * (POST /v1/classify) under a chosen routing, send feedback, read the A/B
 * report (GET /v1/ab), and run the model that answered in the browser with
 * TF.js to compare its answer with the service's.
 *
 * State the tests read: #result and #browser-result carry data-state
 * (idle, loading, done, error), data-request (the classification's number on
 * this page) and, when done, the answer's model, version and label (empty
 * when the service abstained, and data-abstained then holds the reason); the
 * browser result also carries data-agree and data-max-diff; #ab-report
 * carries data-state and data-loaded (how many reports were read).
 */
import { renderAb } from './ab-view';
import {
  type AbAnswer,
  type Classification,
  classify,
  compareVersions,
  describeError,
  getAb,
  getModels,
  type ModelInfo,
  sendFeedback,
} from './api';
import { loadBrowserModel, predict } from './browser-model';
import { byId, h, ms, pct, rawJson, replace } from './dom';
import { drawGray, toModelPixels } from './preprocess';

const el = {
  form: byId('classify-form', HTMLFormElement),
  dropzone: byId('dropzone', HTMLDivElement),
  file: byId('file', HTMLInputElement),
  previewFigure: byId('preview-figure', HTMLElement),
  preview: byId('preview', HTMLImageElement),
  previewCaption: byId('preview-caption', HTMLElement),
  routingKey: byId('routing-key', HTMLInputElement),
  armSelect: byId('arm-select', HTMLSelectElement),
  modelSelect: byId('model-select', HTMLSelectElement),
  topK: byId('topk', HTMLInputElement),
  classifyButton: byId('classify-button', HTMLButtonElement),
  classifyError: byId('classify-error', HTMLDivElement),
  result: byId('result', HTMLDivElement),
  feedbackForm: byId('feedback-form', HTMLFormElement),
  feedbackLabel: byId('feedback-label', HTMLSelectElement),
  feedbackButton: byId('feedback-button', HTMLButtonElement),
  feedbackResult: byId('feedback-result', HTMLParagraphElement),
  browserAuto: byId('browser-auto', HTMLInputElement),
  browserButton: byId('browser-button', HTMLButtonElement),
  browserInput: byId('browser-input', HTMLCanvasElement),
  browserInputCaption: byId('browser-input-caption', HTMLElement),
  browserResult: byId('browser-result', HTMLDivElement),
  abWindow: byId('ab-window', HTMLSelectElement),
  abRefresh: byId('ab-refresh', HTMLButtonElement),
  abUpdated: byId('ab-updated', HTMLSpanElement),
  abError: byId('ab-error', HTMLDivElement),
  abReport: byId('ab-report', HTMLDivElement),
};

const state: {
  file?: File;
  previewUrl?: string;
  models: ModelInfo[];
  ab?: AbAnswer;
  /** Number of the latest classification; answers of older ones are dropped. */
  request: number;
  answer?: Classification;
  /** The file the answer is for. */
  answerFile?: File;
  browserRun: number;
} = { models: [], request: 0, browserRun: 0 };

// ---------------------------------------------------------------------------
// Routing choices

const ROUTING_KEY_STORE = 'product-classifier.routingKey';

/** A random key for this tab (sessionStorage is per tab), kept across reloads of the tab. */
function tabRoutingKey(): string {
  try {
    const kept = sessionStorage.getItem(ROUTING_KEY_STORE);
    if (kept) return kept;
  } catch {
    /* storage disabled: a fresh key per page load */
  }
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  const key = `tab-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  try {
    sessionStorage.setItem(ROUTING_KEY_STORE, key);
  } catch {
    /* not kept */
  }
  return key;
}

function routingMode(): 'auto' | 'arm' | 'model' {
  const checked = el.form.querySelector<HTMLInputElement>('input[name="routing"]:checked');
  return checked?.value === 'arm' ? 'arm' : checked?.value === 'model' ? 'model' : 'auto';
}

function syncRoutingControls(): void {
  const mode = routingMode();
  el.routingKey.disabled = mode !== 'auto';
  el.armSelect.disabled = mode !== 'arm' || el.armSelect.options.length === 0 || el.armSelect.options[0].disabled;
  el.modelSelect.disabled = mode !== 'model' || el.modelSelect.options.length === 0;
}

/** The highest loaded version of a model. */
function latestVersion(model: string): string | undefined {
  return state.models
    .filter((m) => m.name === model)
    .map((m) => m.version)
    .sort(compareVersions)
    .pop();
}

function fillModelSelect(): void {
  const previous = el.modelSelect.value;
  const sorted = [...state.models].sort((a, b) => a.name.localeCompare(b.name) || compareVersions(a.version, b.version));
  replace(
    el.modelSelect,
    ...sorted.map((m) =>
      h(
        'option',
        { value: `${m.name}/${m.version}` },
        `${m.name}/${m.version}`,
        m.kind && m.kind !== m.name ? ` (${m.kind})` : '',
        typeof m.testAccuracy === 'number' ? `, test accuracy ${pct(m.testAccuracy)}` : '',
      ),
    ),
  );
  if (sorted.length === 0) el.modelSelect.append(h('option', { value: '', disabled: true }, 'no model loaded'));
  if (previous && sorted.some((m) => `${m.name}/${m.version}` === previous)) el.modelSelect.value = previous;
  syncRoutingControls();
}

function fillArmSelect(): void {
  const previous = el.armSelect.value;
  const experiment = state.ab?.experiment;
  if (!experiment || experiment.arms.length === 0) {
    replace(el.armSelect, h('option', { value: '', disabled: true }, 'no experiment is running'));
  } else {
    replace(
      el.armSelect,
      ...experiment.arms.map((a) => {
        const version = a.version ?? latestVersion(a.model);
        return h(
          'option',
          { value: a.name, 'data-model': a.model, 'data-version': version ?? '' },
          `${a.name}: ${a.model}${version ? `/${version}` : ''}${a.name === experiment.control ? ' (control)' : ''}`,
        );
      }),
    );
    if (previous && experiment.arms.some((a) => a.name === previous)) el.armSelect.value = previous;
  }
  syncRoutingControls();
}

/** What to send for the chosen routing. */
function routingFields(): { model?: string; version?: string; routingKey?: string } {
  switch (routingMode()) {
    case 'auto': {
      const key = el.routingKey.value.trim();
      return key ? { routingKey: key } : {};
    }
    case 'arm': {
      const option = el.armSelect.selectedOptions[0];
      const model = option?.dataset.model;
      if (!model) throw new Error('choose an arm of the experiment (none is running)');
      return { model, version: option.dataset.version || undefined };
    }
    case 'model': {
      const [model, ...rest] = el.modelSelect.value.split('/');
      if (!model) throw new Error('choose a model (none is loaded)');
      return { model, version: rest.join('/') || undefined };
    }
  }
}

// ---------------------------------------------------------------------------
// Choosing a photo

function chooseFile(file: File | undefined): void {
  if (!file) return;
  state.file = file;
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = URL.createObjectURL(file);
  el.preview.src = state.previewUrl;
  el.preview.alt = `The chosen photo, ${file.name}`;
  el.previewCaption.textContent = `${file.name} (${formatBytes(file.size)})`;
  el.previewFigure.hidden = false;
  el.classifyButton.disabled = false;
  void runClassify();
}

function formatBytes(n: number): string {
  return n < 1024 ? `${n} bytes` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function setupDrop(): void {
  el.file.addEventListener('change', () => chooseFile(el.file.files?.[0]));
  const zone = el.dropzone;
  const over = (e: DragEvent) => {
    if (!e.dataTransfer || !Array.from(e.dataTransfer.types).includes('Files')) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    zone.classList.add('dragging');
  };
  zone.addEventListener('dragenter', over);
  zone.addEventListener('dragover', over);
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('dragging');
    const file = e.dataTransfer?.files[0];
    if (file) chooseFile(file);
  });
  // A file dropped beside the zone must not make the browser leave the page to show it.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
}

// ---------------------------------------------------------------------------
// Classifying with the service

function showError(target: HTMLElement, message: string | undefined): void {
  target.hidden = message === undefined;
  target.textContent = message ?? '';
}

function topK(): number {
  const k = Math.round(Number(el.topK.value));
  return Number.isFinite(k) && k >= 1 ? Math.min(k, 10) : 3;
}

function bars(top: { label: string; confidence: number }[], caption: string): HTMLElement {
  return h(
    'figure',
    { class: 'bars' },
    h('figcaption', {}, caption),
    h(
      'ol',
      {},
      ...top.map((t) =>
        h(
          'li',
          {},
          h('span', { class: 'bar-label' }, t.label),
          h('span', { class: 'bar-track', 'aria-hidden': 'true' }, barFill(t.confidence)),
          h('span', { class: 'bar-value' }, pct(t.confidence)),
        ),
      ),
    ),
  );
}

function barFill(p: number): HTMLElement {
  const fill = h('span', { class: 'bar-fill' });
  fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
  return fill;
}

/** Why the service abstained, as the answer says it ("out-of-distribution", "low-confidence"), or undefined when it answered. */
function abstainedReason(a: Classification): string | undefined {
  const reason: unknown = a.abstained; // the answer as it came: checked, not trusted
  return typeof reason === 'string' && reason !== '' ? reason : undefined;
}

/** What each reason means for the person reading the answer. */
const ABSTAIN_EXPLANATIONS: Record<string, string> = {
  'out-of-distribution': 'the photo looks unlike what the model was trained on',
  'low-confidence': 'the most likely category was not likely enough',
};

function oodView(a: Classification): HTMLElement | null {
  const parts: HTMLElement[] = [];
  const reason = abstainedReason(a);
  if (a.ood && typeof a.ood === 'object') {
    const { score, threshold, flagged } = a.ood;
    parts.push(
      h(
        'p',
        { class: flagged ? 'warning ood' : 'muted ood', 'data-flagged': String(flagged) },
        flagged
          ? `Out of distribution: this photo looks unlike what the model was trained on (score ${score.toFixed(3)} > threshold ${threshold.toFixed(3)})${reason ? '.' : '; treat the label with caution.'}`
          : `In distribution (out-of-distribution score ${score.toFixed(3)} \u2264 threshold ${threshold.toFixed(3)}).`,
      ),
    );
  }
  if (reason) {
    const why = ABSTAIN_EXPLANATIONS[reason];
    parts.push(
      h(
        'p',
        { class: 'warning abstained', 'data-reason': reason },
        `The service abstained (${reason}${why ? `: ${why}` : ''}) and gave no label. The categories below are the model's scores, not an answer.`,
      ),
    );
  }
  return parts.length > 0 ? h('div', {}, ...parts) : null;
}

/** What the special arm names mean (docs/ab-testing.md). */
function armNote(arm: string): string | undefined {
  if (arm === 'explicit') return 'a model was named, so the experiment was bypassed';
  if (arm === 'default') return 'outside the experiment: no experiment, or a key outside its coverage';
  return state.ab?.experiment?.arms.some((x) => x.name === arm) ? `an arm of experiment ${state.ab.experiment.experiment}` : undefined;
}

/** The service's label; an abstained answer has none, and its most likely class stands in (for the comparison and the feedback default). */
function answerLabel(a: Classification): string | undefined {
  return typeof a.label === 'string' && a.label !== '' ? a.label : a.top?.[0]?.label;
}

function renderAnswer(a: Classification, file: File): void {
  const reason = abstainedReason(a);
  const label = !reason && typeof a.label === 'string' && a.label !== '' ? a.label : undefined;
  el.result.dataset.state = 'done';
  el.result.dataset.model = a.model;
  el.result.dataset.version = a.version;
  el.result.dataset.arm = a.arm;
  el.result.dataset.label = label ?? '';
  if (reason) el.result.dataset.abstained = reason;
  replace(
    el.result,
    h(
      'p',
      { class: 'answer' },
      h('span', { class: 'label' }, label ?? (reason ? `no label (abstained: ${reason})` : 'No label')),
      typeof a.confidence === 'number' ? h('span', { class: 'confidence' }, ` ${pct(a.confidence)} confident`) : null,
    ),
    oodView(a),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Model'),
      h('dd', {}, `${a.model}/${a.version}`),
      h('dt', {}, 'Arm'),
      h('dd', {}, a.arm, armNote(a.arm) ? h('span', { class: 'muted' }, ` (${armNote(a.arm)})`) : null),
      h('dt', {}, 'Timings'),
      h('dd', {}, `preprocess ${ms(a.timings?.preprocessMs)}, inference ${ms(a.timings?.inferenceMs)}, total ${ms(a.timings?.totalMs)}`),
      h('dt', {}, 'Photo'),
      h('dd', {}, file.name),
    ),
    bars(a.top, `The ${a.top.length} most likely categories (calibrated confidence)`),
    rawJson(a, 'Raw answer (JSON)'),
  );
  // Feedback: the true category among the answering model's labels.
  const labels = state.models.find((m) => m.name === a.model && m.version === a.version)?.labels ?? a.top.map((t) => t.label);
  replace(el.feedbackLabel, ...labels.map((l) => h('option', { value: l }, l)));
  el.feedbackLabel.value = answerLabel(a) ?? labels[0] ?? '';
  el.feedbackResult.textContent = '';
  el.feedbackButton.disabled = false;
  el.feedbackForm.hidden = false;
}

async function runClassify(): Promise<void> {
  const file = state.file;
  if (!file) return;
  const request = ++state.request;
  el.result.dataset.request = String(request);
  el.result.dataset.state = 'loading';
  for (const k of ['model', 'version', 'arm', 'label', 'abstained']) delete el.result.dataset[k];
  replace(el.result, h('p', { class: 'muted' }, `Classifying ${file.name}\u2026`));
  showError(el.classifyError, undefined);
  el.feedbackForm.hidden = true;
  el.classifyButton.disabled = true;
  try {
    const answer = await classify({ image: file, fileName: file.name, topK: topK(), ...routingFields() });
    if (request !== state.request) return;
    state.answer = answer;
    state.answerFile = file;
    renderAnswer(answer, file);
    void refreshAb(); // the report counts this request
    el.browserButton.disabled = false;
    if (el.browserAuto.checked) void runInBrowser();
  } catch (err) {
    if (request !== state.request) return;
    el.result.dataset.state = 'error';
    replace(el.result);
    showError(el.classifyError, `The service could not classify ${file.name}: ${describeError(err)}`);
  } finally {
    if (request === state.request) el.classifyButton.disabled = false;
  }
}

async function submitFeedback(): Promise<void> {
  const answer = state.answer;
  if (!answer) return;
  el.feedbackButton.disabled = true;
  el.feedbackResult.textContent = 'Sending\u2026';
  try {
    const r = await sendFeedback(answer.predictionId, el.feedbackLabel.value);
    el.feedbackResult.textContent = !r.accepted
      ? `Not counted again: this replica already has feedback for this prediction.`
      : r.abstained
        ? `Recorded: the ${r.model}/${r.version} prediction abstained; its most likely category "${r.predicted}" was ${r.correct ? 'right' : `wrong (true: ${r.label})`}. Arm ${r.arm} counts it apart from its accuracy.`
        : `Recorded: the ${r.model}/${r.version} answer "${r.predicted}" was ${r.correct ? 'correct' : `wrong (true: ${r.label})`}; it counts towards arm ${r.arm}.`;
    void refreshAb();
  } catch (err) {
    el.feedbackResult.textContent = `Feedback refused: ${describeError(err)}`;
  } finally {
    el.feedbackButton.disabled = false;
  }
}

// ---------------------------------------------------------------------------
// The same model in the browser

async function runInBrowser(): Promise<void> {
  const answer = state.answer;
  const file = state.answerFile;
  if (!answer || !file) return;
  const run = ++state.browserRun;
  const out = el.browserResult;
  out.dataset.state = 'loading';
  out.dataset.request = String(state.request);
  for (const k of ['model', 'version', 'label', 'agree', 'maxDiff', 'path']) delete out.dataset[k];
  replace(out, h('p', { class: 'muted' }, `Loading ${answer.model}/${answer.version} into the browser\u2026`));
  el.browserButton.disabled = true;
  try {
    const model = await loadBrowserModel(answer.model, answer.version);
    const t0 = performance.now();
    const pixels = await toModelPixels(file, model.width, model.height);
    const t1 = performance.now();
    const prediction = await predict(model, pixels.gray.data);
    const t2 = performance.now();
    if (run !== state.browserRun) return;

    drawGray(el.browserInput, pixels.gray);
    el.browserInputCaption.textContent =
      pixels.path === 'passthrough'
        ? `The model's input: the ${pixels.source.width}x${pixels.source.height} image as it is (dark background, the service's passthrough)`
        : `The model's input: the ${pixels.source.width}x${pixels.source.height} photo converted in the browser (approximately as the service does)`;

    // Agreement: the same top label, and how far the probabilities of the classes the service listed are apart.
    const serviceLabel = answerLabel(answer);
    const agree = prediction.label === serviceLabel;
    const maxDiff = Math.max(...answer.top.map((t) => Math.abs((prediction.probabilities[t.labelIndex] ?? 0) - t.confidence)));
    const top = prediction.probabilities
      .map((confidence, labelIndex) => ({ label: model.manifest.labels[labelIndex] ?? String(labelIndex), confidence }))
      .sort((a, b) => b.confidence - a.confidence)
      .slice(0, answer.top.length);
    Object.assign(out.dataset, {
      state: 'done',
      model: model.name,
      version: model.version,
      label: prediction.label,
      agree: String(agree),
      maxDiff: String(maxDiff),
      path: pixels.path,
    });
    replace(
      out,
      h(
        'p',
        { class: 'answer' },
        h('span', { class: 'label' }, prediction.label),
        h('span', { class: 'confidence' }, ` ${pct(prediction.confidence)} confident`),
      ),
      h(
        'p',
        { class: agree ? 'agree' : 'warning disagree' },
        abstainedReason(answer)
          ? agree
            ? `Agrees with the service's most likely category (it abstained, giving no label): both rank ${serviceLabel} first.`
            : `Disagrees with the service: the browser ranks ${prediction.label} first, the service ${serviceLabel ?? 'nothing'} (it abstained, giving no label).`
          : agree
            ? `Agrees with the service: both say ${serviceLabel}.`
            : `Disagrees with the service: the browser says ${prediction.label}, the service said ${serviceLabel ?? 'nothing'}.`,
        ` Largest probability difference over the ${answer.top.length} categories the service listed: ${maxDiff.toExponential(2)}.`,
      ),
      pixels.path === 'converted'
        ? h('p', { class: 'muted' }, 'This photo went through the conversion path, where the browser only approximates the service.')
        : null,
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Model'),
        h('dd', {}, `${model.name}/${model.version}, TF.js cpu backend`),
        h('dt', {}, 'Timings'),
        h('dd', {}, `preprocess ${ms(t1 - t0)}, inference ${ms(t2 - t1)}`),
      ),
      bars(top, `The browser's ${top.length} most likely categories`),
    );
  } catch (err) {
    if (run !== state.browserRun) return;
    out.dataset.state = 'error';
    replace(out, h('p', { class: 'error', role: 'alert' }, `The browser could not run the model: ${describeError(err)}`));
  } finally {
    if (run === state.browserRun) el.browserButton.disabled = false;
  }
}

// ---------------------------------------------------------------------------
// Models and the A/B report

async function loadModels(): Promise<void> {
  try {
    state.models = (await getModels()).models;
  } catch (err) {
    state.models = [];
    showError(el.classifyError, `The list of models could not be read: ${describeError(err)}`);
  }
  fillModelSelect();
  fillArmSelect();
}

function renderAbReport(): void {
  if (!state.ab) return;
  replace(el.abReport, renderAb(state.ab, el.abWindow.value));
  el.abReport.dataset.state = 'done';
}

let abLoading = 0;
/** Reports read so far (data-loaded on #ab-report). */
let abLoaded = 0;

async function refreshAb(): Promise<void> {
  const n = ++abLoading;
  el.abReport.dataset.state = 'loading';
  el.abRefresh.disabled = true;
  try {
    const ab = await getAb();
    if (n !== abLoading) return;
    state.ab = ab;
    showError(el.abError, undefined);
    el.abReport.dataset.loaded = String(++abLoaded);
    renderAbReport();
    fillArmSelect();
    el.abUpdated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (n !== abLoading) return;
    el.abReport.dataset.state = 'error';
    showError(el.abError, `The A/B report could not be read: ${describeError(err)}`);
  } finally {
    if (n === abLoading) el.abRefresh.disabled = false;
  }
}

// ---------------------------------------------------------------------------

function main(): void {
  el.routingKey.value = tabRoutingKey();
  setupDrop();
  el.form.addEventListener('change', (e) => {
    if ((e.target as HTMLElement).getAttribute('name') === 'routing') syncRoutingControls();
  });
  el.form.addEventListener('submit', (e) => {
    e.preventDefault();
    void runClassify();
  });
  el.feedbackForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void submitFeedback();
  });
  el.browserButton.addEventListener('click', () => void runInBrowser());
  el.abRefresh.addEventListener('click', () => void refreshAb());
  el.abWindow.addEventListener('change', renderAbReport);
  syncRoutingControls();
  // The models first, so the arms can show their versions.
  void loadModels().then(() => refreshAb());
}

main();
