/** Small DOM helpers for the pages: building elements and formatting numbers. */

export type Child = Node | string | number | null | undefined | false;
export type Attrs = Record<string, string | number | boolean | null | undefined>;

/** An element with attributes (`class` sets the class; false, null and undefined are left out) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'class') el.className = String(value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replace the children of `parent`. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

/** The element with this id, of this type; a missing element is a bug in the page. */
export function byId<T extends HTMLElement>(id: string, type: { new (): T }): T {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`the page has no ${type.name} #${id}`);
  return el;
}

const DASH = '\u2014';

/** A probability as a percentage: 99.9 %, 0.024 %. */
export function pct(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
  const p = x * 100;
  if (p !== 0 && Math.abs(p) < 0.1) return `${p.toPrecision(2)} %`;
  return `${p.toFixed(digits)} %`;
}

/** A number with a few significant digits, or a dash. */
export function num(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
  if (Number.isInteger(x)) return String(x);
  return Math.abs(x) >= 1e-3 ? x.toFixed(digits) : x.toExponential(1);
}

/** A p-value: 0.179, 2.3e-5. */
export function pValue(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
  return x >= 0.001 ? x.toFixed(3) : x.toExponential(1);
}

export function ms(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
  return `${x.toFixed(x < 10 ? 2 : 1)} ms`;
}

/** Pretty JSON for a <details> element showing the raw answer. */
export function rawJson(value: unknown, summary = 'Raw JSON'): HTMLDetailsElement {
  return h('details', { class: 'raw' }, h('summary', {}, summary), h('pre', {}, JSON.stringify(value, null, 2)));
}
