// Create an instance: every choice with what it means, the tiers' limits from the
// catalog, and the API's field errors shown next to their fields.

import { ApiError, call, loc, Network, Operation, proj, requestId, session, shortName, TierInfo } from "../api";
import { h, replace } from "../dom";
import { field, showErrors } from "../form";
import { follow } from "../operations";
import { href, navigate } from "../router";
import { REDIS_CONFIGS } from "../redisConfigs";

interface Zone {
  zoneId: string;
}

export async function createPage(main: HTMLElement): Promise<() => void> {
  replace(main, h("h1", null, "Create an instance"), h("p", { class: "loading" }, "Loading the catalog…"));
  const s = session()!;
  const [tiers, zones, networks] = await Promise.all([
    call<{ tiers: TierInfo[] }>("GET", "/v1/tiers").then((r) => r.tiers).catch(() => [] as TierInfo[]),
    call<{ zones: Zone[] }>("GET", `/v1/regions/${encodeURIComponent(s.region)}/zones`).then((r) => r.zones).catch(() => [] as Zone[]),
    call<{ networks: Network[] }>("GET", `${proj()}/networks`).then((r) => r.networks).catch(() => [] as Network[]),
  ]);
  const tierOf = (t: string) => tiers.find((x) => x.tier === t);

  const id = h("input", { id: "instanceId", name: "instanceId", required: true, autocomplete: "off", spellcheck: "false" });
  const display = h("input", { id: "displayName", name: "displayName" });
  const tier = h("select", { id: "tier", name: "tier" }, ...(tiers.length ? tiers : [{ tier: "BASIC" }, { tier: "STANDARD_HA" }]).map((t) => h("option", { value: t.tier }, t.tier)));
  tier.value = "STANDARD_HA";
  const tierHint = h("span");
  const size = h("input", { id: "memorySizeGb", name: "memorySizeGb", type: "number", inputmode: "numeric", value: "1" });
  const sizeHint = h("span");
  const replicas = h("input", { id: "replicaCount", name: "replicaCount", type: "number", inputmode: "numeric", value: "1" });
  const replicasHint = h("span");
  const readReplicas = h("input", { id: "readReplicasMode", name: "readReplicasMode", type: "checkbox" });
  const zoneOptions = () => zones.map((z) => h("option", { value: z.zoneId }, z.zoneId));
  const zone = h("select", { id: "locationId", name: "locationId" }, h("option", { value: "" }, "Chosen by the system"), ...zoneOptions());
  const altZone = h("select", { id: "alternativeLocationId", name: "alternativeLocationId" }, h("option", { value: "" }, "Chosen by the system"), ...zoneOptions());
  const network = h("select", { id: "authorizedNetwork", name: "authorizedNetwork" }, ...networks.map((n) => h("option", { value: shortName(n.name) }, `${shortName(n.name)} (${n.ipRange})`)));
  if (!networks.length) network.append(h("option", { value: "" }, "default"));
  const labels = h("textarea", { id: "labels", name: "labels", rows: 2, placeholder: "env=prod\nteam=web" });
  const configControls = REDIS_CONFIGS.map((c) => {
    const cid = `config-${c.key}`;
    const control = c.values
      ? h("select", { id: cid, name: c.key }, ...c.values.map((v) => h("option", { value: v }, v || "(Redis default)")))
      : h("input", { id: cid, name: c.key, inputmode: c.inputmode ?? null, spellcheck: "false" });
    return { key: c.key, control, el: field(c.key, control, c.hint, `redisConfigs.${c.key}`) };
  });

  const updateHints = () => {
    const t = tierOf(tier.value);
    const ha = tier.value === "STANDARD_HA";
    tierHint.textContent = t ? t.description : "";
    sizeHint.textContent = t ? `${t.minMemorySizeGb}–${t.maxMemorySizeGb} GB: the instance's maxmemory, on each node.` : "GB of memory.";
    replicas.disabled = !ha;
    readReplicas.disabled = !ha;
    altZone.disabled = !ha;
    if (!ha) replicas.value = "0";
    else if (replicas.value === "0") replicas.value = readReplicas.checked ? "2" : "1";
    replicasHint.textContent = ha
      ? readReplicas.checked
        ? "1–5 replicas in other zones; the read endpoint spreads connections over them."
        : "1 replica in another zone, promoted by automatic failover. Enable read replicas for up to 5."
      : "BASIC has no replicas and no failover.";
  };
  tier.addEventListener("change", updateHints);
  readReplicas.addEventListener("change", () => {
    if (readReplicas.checked && replicas.value === "1") replicas.value = "2";
    if (!readReplicas.checked) replicas.value = "1";
    updateHints();
  });
  updateHints();

  const status = h("div", { class: "form-error", role: "alert" });
  const progress = h("div", { class: "ops", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create");
  const form = h(
    "form",
    { class: "card create", novalidate: true, "aria-describedby": "create-intro" },
    h("p", { id: "create-intro" }, "A Redis instance: one primary (BASIC), or a primary with replicas in other zones and automatic failover (STANDARD_HA)."),
    h(
      "fieldset",
      null,
      h("legend", null, "Instance"),
      field("Instance id", id, "1–40 lowercase letters, digits or hyphens, starting with a letter."),
      field("Display name", display, "Optional, up to 80 characters."),
      field("Tier", tier, tierHint),
      field("Memory size (GB)", size, sizeHint),
    ),
    h(
      "fieldset",
      null,
      h("legend", null, "Replicas and zones"),
      field("Replicas", replicas, replicasHint),
      h("div", { class: "field check" }, readReplicas, h("label", { for: "readReplicasMode" }, "Enable read replicas (a read endpoint over the replicas; cannot be disabled later)"), h("p", { class: "field-error", "data-error-for": "readReplicasMode" })),
      field("Primary zone", zone, "The primary's zone (locationId)."),
      field("Alternative zone", altZone, "The first replica's zone; must differ from the primary's."),
    ),
    h("fieldset", null, h("legend", null, "Network"), field("Network", network, "Applications reach the instance from this network (or a connector of it).")),
    h("fieldset", { class: "columns" }, h("legend", null, "Redis configuration"), ...configControls.map((c) => c.el)),
    h("fieldset", null, h("legend", null, "Labels"), field("Labels", labels, "One key=value per line: lowercase letters, digits, '-' or '_'.")),
    status,
    h("div", { class: "actions" }, submit, h("a", { href: href("/"), class: "button" }, "Cancel")),
    progress,
  );
  readReplicas.dataset.field = "readReplicasMode";

  let stop: (() => void) | undefined;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    status.textContent = "";
    const local = new Map<string, string>();
    const labelMap: Record<string, string> = {};
    for (const line of labels.value.split("\n").map((l) => l.trim()).filter(Boolean)) {
      const i = line.indexOf("=");
      if (i <= 0) local.set("labels", `'${line}' is not key=value`);
      else labelMap[line.slice(0, i)] = line.slice(i + 1);
    }
    if (!id.value.trim()) local.set("instanceId", "Enter an instance id.");
    if (showErrors(form, local)) return;
    const redisConfigs: Record<string, string> = {};
    for (const c of configControls) if (c.control.value !== "") redisConfigs[c.key] = c.control.value;
    const ha = tier.value === "STANDARD_HA";
    const body: Record<string, unknown> = {
      tier: tier.value,
      memorySizeGb: Number(size.value),
      redisConfigs,
      labels: labelMap,
      authorizedNetwork: network.value || undefined,
      displayName: display.value || undefined,
      locationId: zone.value || undefined,
    };
    if (size.value.trim() === "" || !Number.isFinite(Number(size.value))) body.memorySizeGb = size.value;
    if (ha) {
      body.replicaCount = Number(replicas.value);
      body.readReplicasMode = readReplicas.checked ? "READ_REPLICAS_ENABLED" : "READ_REPLICAS_DISABLED";
      if (altZone.value) body.alternativeLocationId = altZone.value;
    }
    submit.disabled = true;
    try {
      const op = await call<Operation>("POST", `${loc()}/instances`, {
        query: { instanceId: id.value.trim(), requestId: requestId() },
        body,
      });
      showErrors(form, new Map());
      const name = id.value.trim();
      stop = follow(op, progress, (o) => {
        if (!o.error) navigate(`/instances/${encodeURIComponent(name)}`);
        else submit.disabled = false;
      });
      progress.append(h("p", null, "Creating: the page follows the operation. ", h("a", { href: href(`/instances/${encodeURIComponent(name)}`) }, "Open the instance now")));
    } catch (err) {
      submit.disabled = false;
      const ae = err as ApiError;
      const rest: string[] = [];
      if (!showErrors(form, ae.fields ?? new Map(), rest) || rest.length) {
        status.textContent = `${ae.status}: ${ae.message}`;
      }
    }
  });

  replace(main, h("h1", null, "Create an instance"), form);
  return () => stop?.();
}
