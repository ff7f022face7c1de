// One instance: its endpoints (copy buttons, the redis-cli line), nodes per zone,
// properties, labels and configs, the AUTH string behind a reveal button, its
// operations with live progress, the monitoring charts, and scale, failover and delete.

import { ApiError, call, Instance, loc, Operation, requestId, shortName } from "../api";
import { announce, badge, copyButton, h, replace, when } from "../dom";
import { field, showErrors } from "../form";
import { follow, progress } from "../operations";
import { href, navigate } from "../router";
import { Charts } from "../charts";

const STEADY = new Set(["READY", "FAILED"]);

export async function instancePage(main: HTMLElement, params: Record<string, string>): Promise<() => void> {
  const id = params.id;
  const path = `${loc()}/instances/${encodeURIComponent(id)}`;
  const head = h("div", { class: "title-row" });
  const overview = h("div", { class: "grid" });
  const opsBox = h("div", { class: "ops", "aria-live": "polite" });
  const charts = new Charts(id);
  const status = h("p", { class: "form-error", role: "alert" });
  let inst: Instance | null = null;
  let timer: number | undefined;
  let chartTimer: number | undefined;
  const stops: (() => void)[] = [];
  let gone = false;
  let deleting = false;

  const load = async () => {
    clearTimeout(timer);
    try {
      inst = await call<Instance>("GET", path);
      status.textContent = "";
      draw(inst);
      await loadOps();
    } catch (e) {
      const err = e as ApiError;
      if (err.httpStatus === 404) {
        gone = true;
        if (deleting) {
          announce(`${id} was deleted`);
          navigate("/");
          return;
        }
        replace(main, h("h1", null, id), h("p", null, "This instance does not exist (any more). ", h("a", { href: href("/") }, "Back to the instances")));
        return;
      }
      status.textContent = `${err.status}: ${err.message}`;
    }
    if (!gone) timer = window.setTimeout(load, inst && STEADY.has(inst.state) ? 5000 : 1000);
  };

  const loadOps = async () => {
    const r = await call<{ operations?: Operation[] }>("GET", `${loc()}/operations`, { query: { pageSize: "100" } });
    const mine = (r.operations ?? []).filter((o) => shortName(o.metadata.target) === id).slice(0, 10);
    replace(opsBox, mine.length ? mine.map((o) => h("div", { class: "op-row" }, progress(o), h("span", { class: "sub" }, when(o.metadata.createTime)))) : h("p", { class: "empty" }, "No operations."));
  };

  const draw = (i: Instance) => {
    const ha = i.tier === "STANDARD_HA";
    replace(
      head,
      h("h1", null, shortName(i.name), " ", badge(i.state)),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onclick: () => scaleDialog(i) }, "Scale"),
        ha ? h("button", { type: "button", onclick: () => failoverDialog(i) }, "Failover") : null,
        h("button", { type: "button", class: "danger", onclick: () => deleteDialog(i) }, "Delete"),
      ),
    );
    const cli = (host: string, port: number) =>
      `redis-cli -h ${host} -p ${port}${i.transitEncryptionMode === "SERVER_AUTHENTICATION" ? " --tls --cacert server-ca.pem" : ""}${i.authEnabled ? " --askpass" : ""}`;
    const endpoint = (title: string, host: string | undefined, port: number | undefined, testid: string) =>
      host && port
        ? [
            h("dt", null, title),
            h("dd", { "data-testid": testid }, h("code", null, `${host}:${port}`), " ", copyButton(`${host}:${port}`, `Copy the ${title.toLowerCase()}`)),
            h("dt", null, h("span", { class: "sr-only" }, `${title}: `), "redis-cli"),
            h("dd", null, h("code", { class: "cli" }, cli(host, port)), " ", copyButton(cli(host, port), `Copy the redis-cli line of the ${title.toLowerCase()}`)),
          ]
        : null;
    const zones = [...new Set(i.nodes.map((n) => n.zone))].sort();
    replace(
      overview,
      i.statusMessage ? h("p", { class: "status-message card wide" }, i.statusMessage) : null,
      h(
        "section",
        { class: "card", "aria-labelledby": "connect-h" },
        h("h2", { id: "connect-h" }, "Connect"),
        h("dl", null, endpoint("Primary endpoint", i.host, i.port, "endpoint"), endpoint("Read endpoint", i.readEndpoint, i.readEndpointPort, "read-endpoint")),
        i.authEnabled ? h("p", { class: "hint" }, "redis-cli --askpass asks for the AUTH string; applications use host, port and the AUTH string.") : null,
        i.authEnabled ? authString(path) : h("p", null, "AUTH is disabled."),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "nodes-h" },
        h("h2", { id: "nodes-h" }, "Nodes"),
        ...zones.map((z) =>
          h(
            "div",
            { class: "zone" },
            h("h3", null, z),
            h(
              "ul",
              { class: "nodes" },
              ...i.nodes
                .filter((n) => n.zone === z)
                .map((n) => h("li", { "data-role": n.role }, h("strong", null, n.role), " ", badge(n.state), " ", h("code", null, `${n.address}:${n.port}`))),
            ),
          ),
        ),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "props-h" },
        h("h2", { id: "props-h" }, "Properties"),
        h(
          "dl",
          { class: "props" },
          ...([
            ["Tier", i.tier],
            ["Memory size", `${i.memorySizeGb} GB`],
            ["Replicas", String(i.replicaCount)],
            ["Read replicas", i.readReplicasMode === "READ_REPLICAS_ENABLED" ? "enabled" : "disabled"],
            ["Zones", `${i.locationId}${i.alternativeLocationId ? `, alternative ${i.alternativeLocationId}` : ""}`],
            ["Primary now in", i.currentLocationId || i.locationId],
            ["Version", i.redisVersion],
            ["Network", shortName(i.authorizedNetwork)],
            ["Address range", i.reservedIpRange],
            ["TLS", i.transitEncryptionMode],
            ["Created", when(i.createTime)],
          ] as [string, string][]).flatMap(([k, v]) => [h("dt", null, k), h("dd", { "data-prop": k }, v)]),
        ),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "labels-h" },
        h("h2", { id: "labels-h" }, "Labels and configuration"),
        h("h3", null, "Labels"),
        Object.keys(i.labels ?? {}).length ? h("ul", { class: "tags" }, ...Object.entries(i.labels).map(([k, v]) => h("li", { class: "label" }, `${k}=${v}`))) : h("p", { class: "empty" }, "None."),
        h("h3", null, "redisConfigs"),
        h("dl", { class: "props" }, ...Object.entries(i.redisConfigs ?? {}).flatMap(([k, v]) => [h("dt", null, k), h("dd", null, h("code", null, v || '""'))])),
      ),
    );
  };

  /** Runs a mutating call from a dialog; follows its operation here. */
  const startOperation = (op: Operation, after?: (o: Operation) => void) => {
    announce(`${op.metadata.verb} started`);
    const box = h("div", { class: "op-row" });
    opsBox.prepend(box);
    stops.push(
      follow(op, box, (o) => {
        void load();
        void charts.refresh();
        after?.(o);
      }),
    );
    void load();
  };

  const scaleDialog = (i: Instance) => {
    const size = h("input", { id: "scale-size", name: "memorySizeGb", type: "number", inputmode: "numeric", value: String(i.memorySizeGb) });
    const replicas = h("input", { id: "scale-replicas", name: "replicaCount", type: "number", inputmode: "numeric", value: String(i.replicaCount), disabled: i.tier !== "STANDARD_HA" });
    dialog(
      "Scale",
      [
        h("p", null, "Size changes apply online (CONFIG SET maxmemory, no restart) when the hosts have room; a new replica makes a full sync; a removed one only closes its connections."),
        field("Memory size (GB)", size, undefined, "memorySizeGb"),
        field("Replicas", replicas, i.tier === "STANDARD_HA" ? "1–5 with read replicas, 1 without." : "BASIC has no replicas.", "replicaCount"),
      ],
      "Scale",
      async (form) => {
        const mask: string[] = [];
        const body: Record<string, unknown> = { etag: i.etag };
        if (Number(size.value) !== i.memorySizeGb) (mask.push("memorySizeGb"), (body.memorySizeGb = Number(size.value)));
        if (!replicas.disabled && Number(replicas.value) !== i.replicaCount) (mask.push("replicaCount"), (body.replicaCount = Number(replicas.value)));
        if (!mask.length) return showErrors(form, new Map([["memorySizeGb", "Change the size or the replicas."]])) && false;
        const op = await call<Operation>("PATCH", path, { query: { updateMask: mask.join(","), requestId: requestId() }, body });
        startOperation(op);
        return true;
      },
    );
  };

  const failoverDialog = (i: Instance) => {
    const choice = (value: string, title: string, text: string, checked: boolean) =>
      h(
        "div",
        { class: "radio" },
        h("input", { type: "radio", name: "dataProtectionMode", id: `mode-${value}`, value, checked, "aria-describedby": `mode-${value}-text` }),
        h("label", { for: `mode-${value}` }, title),
        h("p", { class: "hint", id: `mode-${value}-text` }, text),
      );
    dialog(
      "Failover",
      [
        h("p", null, `A replica of ${shortName(i.name)} becomes the primary; the primary endpoint moves with it, so clients reconnect to the same address.`),
        h(
          "fieldset",
          { "data-field": "dataProtectionMode" },
          h("legend", null, "Data protection"),
          choice(
            "LIMITED_DATA_LOSS",
            "Limited data loss (recommended)",
            "Refused while the best replica lags by 30 MB or more. From a healthy primary it is a coordinated switchover: writes pause briefly and no acknowledged write is lost.",
            true,
          ),
          choice(
            "FORCE_DATA_LOSS",
            "Force (data loss possible)",
            "Promotes a replica at once without checking its lag: writes the replica had not received are lost. For a primary that is down or unreachable.",
            false,
          ),
          h("p", { class: "field-error", "data-error-for": "dataProtectionMode" }),
        ),
      ],
      "Fail over",
      async (form) => {
        const mode = (form.querySelector("input[name=dataProtectionMode]:checked") as HTMLInputElement).value;
        const op = await call<Operation>("POST", `${path}/failover`, { query: { requestId: requestId() }, body: { dataProtectionMode: mode } });
        startOperation(op);
        return true;
      },
    );
  };

  const deleteDialog = (i: Instance) => {
    const name = shortName(i.name);
    const confirm = h("input", { id: "delete-confirm", name: "confirm", autocomplete: "off", spellcheck: "false" });
    let submit: HTMLButtonElement | null = null;
    confirm.addEventListener("input", () => submit && (submit.disabled = confirm.value !== name));
    submit = dialog(
      "Delete",
      [
        h("p", null, "The instance, its nodes and its data are deleted, and its address range is freed. This cannot be undone."),
        field(`Type ${name} to confirm`, confirm, undefined, "confirm"),
      ],
      "Delete",
      async () => {
        const op = await call<Operation>("DELETE", path, { query: { requestId: requestId() } });
        deleting = true;
        startOperation(op, (o) => {
          if (!o.error && !gone) navigate("/");
        });
        return true;
      },
      "danger",
    );
    submit.disabled = true;
  };

  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: href("/") }, "Instances"), " / ", id),
    head,
    status,
    overview,
    h("section", { class: "card", "aria-labelledby": "ops-h" }, h("h2", { id: "ops-h" }, "Operations"), opsBox),
    charts.el,
  );
  head.append(h("h1", null, id));
  await load();
  await charts.refresh();
  chartTimer = window.setInterval(() => void charts.refresh(), 10000);
  return () => {
    clearTimeout(timer);
    clearInterval(chartTimer);
    stops.forEach((s) => s());
    charts.destroy();
    gone = true;
  };
}

/** The AUTH string, fetched only when the user asks to see it. */
function authString(path: string): HTMLElement {
  const box = h("div", { class: "auth" });
  const hide = () =>
    replace(
      box,
      h("span", null, "AUTH string: "),
      h("code", null, "••••••••"),
      " ",
      h(
        "button",
        {
          type: "button",
          onclick: async () => {
            try {
              const r = await call<{ authString: string }>("GET", `${path}/authString`);
              replace(box, h("span", null, "AUTH string: "), h("code", { "data-testid": "auth-string" }, r.authString), " ", copyButton(r.authString, "Copy the AUTH string"), " ", h("button", { type: "button", onclick: hide }, "Hide"));
            } catch (e) {
              replace(box, h("p", { class: "form-error", role: "alert" }, (e as Error).message));
            }
          },
        },
        "Reveal",
      ),
    );
  hide();
  return box;
}

/** A modal dialog with a form: `submit` returns true to close it; API field errors
 * show next to their fields. Returns the submit button. */
function dialog(
  title: string,
  body: HTMLElement[],
  action: string,
  submit: (form: HTMLFormElement) => Promise<boolean>,
  kind = "primary",
): HTMLButtonElement {
  const status = h("p", { class: "form-error", role: "alert" });
  const ok = h("button", { type: "submit", class: kind }, action);
  const form = h("form", { method: "dialog", novalidate: true }, h("h2", { id: "dialog-title" }, title), ...body, status, h("div", { class: "actions" }, ok, h("button", { type: "button", value: "cancel", onclick: () => d.close() }, "Cancel")));
  const d = h("dialog", { "aria-labelledby": "dialog-title" }, form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    status.textContent = "";
    ok.disabled = true;
    try {
      if (await submit(form)) d.close();
    } catch (err) {
      const ae = err as ApiError;
      const rest: string[] = [];
      if (!showErrors(form, ae.fields ?? new Map(), rest) || rest.length) status.textContent = `${ae.status ?? "Error"}: ${ae.message}`;
    } finally {
      ok.disabled = false;
    }
  });
  d.addEventListener("close", () => d.remove());
  document.body.append(d);
  d.showModal();
  (form.querySelector("input:not([disabled]), select") as HTMLElement | null)?.focus();
  return ok;
}
