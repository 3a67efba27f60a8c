/** A few DOM helpers: the demo is plain TypeScript and DOM, without a framework. */

type Child = Node | string | number | null | undefined | false;
type Attributes = Record<string, string | number | boolean | null | undefined>;

/** Creates an element with attributes (false/null/undefined are left out) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: readonly (Child | readonly Child[])[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: readonly (Child | readonly Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
}

/** Replaces every child of `parent`. */
export function replaceChildren(parent: Element, ...children: readonly (Child | readonly Child[])[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}

/** A titled card: the unit of the page layout. */
export function card(id: string, title: string, subtitle: string, ...body: readonly (Child | readonly Child[])[]): HTMLElement {
  return el(
    'section',
    { class: 'card', id },
    el('header', { class: 'card-header' }, el('h2', {}, title), el('p', { class: 'card-subtitle' }, subtitle)),
    ...body,
  );
}

/** A labelled form field around `control`. */
export function field(label: string, control: HTMLElement): HTMLLabelElement {
  return el('label', { class: 'field' }, el('span', { class: 'field-label' }, label), control);
}

export function numberInput(name: string, value: number, min: number, max: number, step = 1): HTMLInputElement {
  return el('input', { type: 'number', name, value, min, max, step, inputmode: 'numeric' });
}

/** A select; an option with a third element `true` is shown but disabled. */
export function select<T extends string>(
  name: string,
  options: readonly (readonly [T, string] | readonly [T, string, boolean])[],
  value: T,
): HTMLSelectElement {
  const control = el('select', { name });
  for (const [optionValue, label, disabled] of options) {
    control.appendChild(el('option', { value: optionValue, selected: optionValue === value, disabled: disabled ?? false }, label));
  }
  return control;
}

export function checkbox(name: string, checked: boolean): HTMLInputElement {
  return el('input', { type: 'checkbox', name, checked });
}

/** Formats a duration in milliseconds for people. */
export function formatMilliseconds(ms: number): string {
  if (ms < 0.1) return `${(ms * 1000).toFixed(1)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** An error's message for display (never thrown to the console). */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
