// Sign-in: a token (kept in this tab's sessionStorage only), a project and a region,
// checked against the API before they are kept.

import { ApiError, call, saveSession } from "../api";
import { h, replace } from "../dom";
import { navigate } from "../router";
import { field, showErrors } from "../form";

export function signIn(main: HTMLElement): void {
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const project = h("input", { id: "project", name: "project", required: true, autocomplete: "on", value: "demo-project" });
  const region = h("input", { id: "region", name: "region", required: true, value: "local" });
  const status = h("p", { class: "form-error", role: "alert" });
  const form = h(
    "form",
    { class: "card narrow", novalidate: true },
    field("Token", token, "An API token of the project (or an admin token). It stays in this browser tab and is sent only to this API."),
    field("Project", project),
    field("Region", region),
    status,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    status.textContent = "";
    const s = { token: token.value.trim(), project: project.value.trim(), region: region.value.trim() };
    const errors = new Map<string, string>();
    if (!s.token) errors.set("token", "Enter a token.");
    if (!s.project) errors.set("project", "Enter a project.");
    if (!s.region) errors.set("region", "Enter a region.");
    if (showErrors(form, errors)) return;
    try {
      await call("GET", `/v1/projects/${encodeURIComponent(s.project)}/locations/${encodeURIComponent(s.region)}/instances`, {
        query: { pageSize: "1" },
        token: s.token,
      });
    } catch (err) {
      const e = err as ApiError;
      if (e.httpStatus === 401) errors.set("token", "This token is not valid.");
      else if (e.httpStatus === 403) errors.set("project", `This token may not use project ${s.project}.`);
      else status.textContent = `${e.status}: ${e.message}`;
      showErrors(form, errors);
      return;
    }
    saveSession(s);
    token.value = "";
    const next = new URLSearchParams(location.search).get("next");
    navigate(next && next.startsWith("/") && !next.startsWith("/signin") ? next : "/", true);
  });
  replace(main, h("h1", null, "Sign in"), form);
}
