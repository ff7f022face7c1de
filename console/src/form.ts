// Form fields with a label, a hint and a place for the API's field error, tied
// together with aria-describedby so screen readers read them with the field.

import { h, Child } from "./dom";

/** A labelled field: `control` must have an id; `api` is the API field it stands for. */
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  hint?: Child,
  api?: string,
): HTMLElement {
  const id = control.id;
  const hintId = `${id}-hint`;
  const errId = `${id}-error`;
  control.setAttribute("aria-describedby", `${hint ? hintId + " " : ""}${errId}`);
  control.dataset.field = api ?? control.name ?? id;
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    control,
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    h("p", { class: "field-error", id: errId, "data-error-for": control.dataset.field }),
  );
}

/** Shows `errors` (API field → message) next to their fields; true if any was shown.
 * Focuses the first field in error. Errors whose field is not in the form are returned
 * in `rest`. */
export function showErrors(form: HTMLElement, errors: Map<string, string>, rest?: string[]): boolean {
  form.querySelectorAll<HTMLElement>("[data-error-for]").forEach((p) => (p.textContent = ""));
  form.querySelectorAll("[aria-invalid]").forEach((c) => c.removeAttribute("aria-invalid"));
  let first: HTMLElement | null = null;
  for (const [name, msg] of errors) {
    // `labels.env` belongs to the labels field; `redisConfigs.timeout` has a field of its own.
    const field = [name, name.split(".")[0]].find((f) => form.querySelector(`[data-field="${CSS.escape(f)}"]`)) ?? name;
    const control = form.querySelector<HTMLElement>(`[data-field="${CSS.escape(field)}"]`);
    const slot = form.querySelector<HTMLElement>(`[data-error-for="${CSS.escape(field)}"]`);
    if (control && slot) {
      slot.textContent = field === name ? msg : `${name}: ${msg}`;
      control.setAttribute("aria-invalid", "true");
      first ??= control;
    } else {
      rest?.push(`${name}: ${msg}`);
    }
  }
  first?.focus();
  return errors.size > 0;
}
