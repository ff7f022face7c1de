// The instances of the project and region: a table with state badges, a filter on
// state and labels, and pages (pageToken). It refreshes every 5 s, so states change
// live.

import { ApiError, call, Instance, loc, shortName } from "../api";
import { badge, h, replace } from "../dom";
import { href } from "../router";
import { field } from "../form";

const STATES = ["", "CREATING", "READY", "UPDATING", "REPAIRING", "FAILING_OVER", "DELETING", "FAILED"];

interface ListResponse {
  instances?: Instance[];
  nextPageToken?: string;
}

/** `state=READY AND labels.env=prod` from the form's values; null when a label is malformed. */
export function filterOf(state: string, labels: string): string | null {
  const parts: string[] = [];
  if (state) parts.push(`state=${state}`);
  for (const l of labels.split(/[\s,]+/).filter(Boolean)) {
    const m = /^([a-z][a-z0-9_-]*)[=:]([a-z0-9_-]*)$/.exec(l);
    if (!m) return null;
    parts.push(`labels.${m[1]}=${m[2]}`);
  }
  return parts.join(" AND ");
}

export function instancesPage(main: HTMLElement): () => void {
  const params = new URLSearchParams(location.search);
  const state = h("select", { id: "filter-state", name: "state" }, ...STATES.map((s) => h("option", { value: s }, s || "Any state")));
  state.value = params.get("state") ?? "";
  const labels = h("input", { id: "filter-labels", name: "labels", placeholder: "env=prod team=web", value: params.get("labels") ?? "" });
  const body = h("div", { class: "table-wrap" });
  const pager = h("div", { class: "pager" });
  const status = h("p", { class: "form-error", role: "alert" });
  const tokens: string[] = [""]; // page tokens of the pages seen, for "Previous"
  const pageSize = /^\d{1,3}$/.test(params.get("pageSize") ?? "") ? (params.get("pageSize") as string) : "20";
  let page = 0;
  let timer: number | undefined;

  const load = async () => {
    clearTimeout(timer);
    const filter = filterOf(state.value, labels.value.trim());
    if (filter === null) {
      status.textContent = "Labels are key=value pairs of lowercase letters, digits, '-' or '_'.";
      return;
    }
    try {
      const r = await call<ListResponse>("GET", `${loc()}/instances`, {
        query: { pageSize, pageToken: tokens[page], filter },
      });
      status.textContent = "";
      replace(body, table(r.instances ?? []));
      tokens[page + 1] = r.nextPageToken ?? "";
      replace(
        pager,
        h("button", { type: "button", disabled: page === 0, onclick: () => ((page -= 1), void load()) }, "Previous"),
        h("span", { "aria-live": "polite" }, `Page ${page + 1}`),
        h("button", { type: "button", disabled: !r.nextPageToken, onclick: () => ((page += 1), void load()) }, "Next"),
      );
    } catch (e) {
      const err = e as ApiError;
      status.textContent = `${err.status}: ${err.message}`;
    }
    timer = window.setTimeout(load, 5000);
  };

  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter instances" },
    field("State", state),
    field("Labels", labels, "Space-separated key=value"),
    h("button", { type: "submit" }, "Filter"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    tokens.length = 1;
    page = 0;
    const q = new URLSearchParams();
    if (state.value) q.set("state", state.value);
    if (labels.value.trim()) q.set("labels", labels.value.trim());
    if (pageSize !== "20") q.set("pageSize", pageSize);
    history.replaceState(null, "", `${location.pathname}${q.size ? `?${q}` : ""}`);
    void load();
  });

  replace(
    main,
    h("div", { class: "title-row" }, h("h1", null, "Instances"), h("a", { class: "button primary", href: href("/instances/new") }, "Create instance")),
    form,
    status,
    body,
    pager,
  );
  void load();
  return () => clearTimeout(timer);
}

function table(list: Instance[]): HTMLElement {
  if (list.length === 0) return h("p", { class: "empty" }, "No instances match.");
  return h(
    "table",
    { class: "list" },
    h("caption", { class: "sr-only" }, "Instances"),
    h(
      "thead",
      null,
      h("tr", null, ...["Name", "State", "Tier", "Size", "Replicas", "Primary zone", "Endpoint", "Labels"].map((c) => h("th", { scope: "col" }, c))),
    ),
    h(
      "tbody",
      null,
      ...list.map((i) => {
        const id = shortName(i.name);
        return h(
          "tr",
          { "data-instance": id },
          h("th", { scope: "row" }, h("a", { href: href(`/instances/${encodeURIComponent(id)}`) }, id), i.displayName && i.displayName !== id ? h("div", { class: "sub" }, i.displayName) : null),
          h("td", { "data-label": "State" }, badge(i.state)),
          h("td", { "data-label": "Tier" }, i.tier),
          h("td", { "data-label": "Size" }, `${i.memorySizeGb} GB`),
          h("td", { "data-label": "Replicas" }, String(i.replicaCount)),
          h("td", { "data-label": "Primary zone" }, i.currentLocationId || i.locationId),
          h("td", { "data-label": "Endpoint" }, i.host ? `${i.host}:${i.port}` : "–"),
          h("td", { "data-label": "Labels" }, ...Object.entries(i.labels ?? {}).map(([k, v]) => h("span", { class: "label" }, `${k}=${v}`))),
        );
      }),
    ),
  );
}
