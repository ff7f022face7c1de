// A tiny element builder: text always goes in as text (never parsed as HTML), so
// nothing the API returns can inject markup.

export type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** Creates `<tag>` with attributes (`on…` are listeners) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v);
    } else if (k === "value" && "value" in el) {
      (el as unknown as { value: string }).value = String(v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (flattening arrays, skipping empty ones). */
export function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A coloured badge for a state (READY, CREATING, …). */
export function badge(state: string): HTMLElement {
  return h("span", { class: `badge badge-${state.toLowerCase()}` }, state);
}

/** Bytes as MiB/GiB. */
export function bytes(n: number | undefined | null): string {
  if (n === undefined || n === null) return "–";
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** A time as the user's locale shows it. */
export function when(iso: string | undefined | null): string {
  return iso ? new Date(iso).toLocaleString() : "–";
}

/** A button that copies `text` and says so. */
export function copyButton(text: string, label: string): HTMLButtonElement {
  const b = h("button", { type: "button", class: "copy", "aria-label": label }, "Copy");
  b.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = "Copied";
    } catch {
      b.textContent = "Select and copy";
    }
    setTimeout(() => (b.textContent = "Copy"), 2000);
  });
  return b;
}

/** A polite live region's message (screen readers announce it). */
export function announce(text: string): void {
  const r = document.getElementById("announce");
  if (r) r.textContent = text;
}
