/** A DOM element with attributes and text (the panel's and the dialogs' one helper). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, v);
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

/** A labelled field of a dialog form (label above, the control below). */
export function field(
  id: string,
  label: string,
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement
): HTMLElement {
  const box = el('div', { class: 'plexhub-field', 'data-field': id });
  control.id = `plexhub-${id}`;
  control.name = id;
  box.append(el('label', { for: control.id }, label), control);
  return box;
}
