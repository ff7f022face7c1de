// Networks (project-wide address pools) and connectors (a /28 of a network where
// clients outside it reach it), with forms to create them.

import { ApiError, call, Connector, loc, Network, Operation, proj, requestId, shortName } from "../api";
import { badge, h, replace, when } from "../dom";
import { field, showErrors } from "../form";
import { follow } from "../operations";

export function networksPage(main: HTMLElement): () => void {
  const netBody = h("div", { class: "table-wrap" });
  const conBody = h("div", { class: "table-wrap" });
  const status = h("p", { class: "form-error", role: "alert" });
  const stops: (() => void)[] = [];

  const load = async () => {
    try {
      const [n, c] = await Promise.all([
        call<{ networks?: Network[] }>("GET", `${proj()}/networks`),
        call<{ connectors?: Connector[] }>("GET", `${loc()}/connectors`),
      ]);
      replace(
        netBody,
        simpleTable("Networks", ["Name", "Address pool", "Description", "Created"], (n.networks ?? []).map((x) => [shortName(x.name), x.ipRange, x.description || "–", when(x.createTime)])),
      );
      replace(
        conBody,
        simpleTable("Connectors", ["Name", "State", "Network", "Range", "Host", "Namespace"], (c.connectors ?? []).map((x) => [shortName(x.name), badge(x.state), shortName(x.network), x.ipCidrRange, x.host ?? "–", x.namespace ?? "–"])),
      );
    } catch (e) {
      status.textContent = `${(e as ApiError).status}: ${(e as Error).message}`;
    }
  };

  // Create a network.
  const nName = h("input", { id: "network-id", name: "networkId", autocomplete: "off" });
  const nRange = h("input", { id: "network-range", name: "ipRange", placeholder: "10.10.0.0/16", autocomplete: "off" });
  const nDesc = h("input", { id: "network-description", name: "description" });
  const nStatus = h("p", { class: "form-error", role: "alert" });
  const netForm = h(
    "form",
    { class: "card", novalidate: true, "aria-labelledby": "new-network-h" },
    h("h2", { id: "new-network-h" }, "Create a network"),
    field("Name", nName, "Lowercase letters, digits and hyphens.", "networkId"),
    field("Address pool", nRange, "A CIDR inside the operator's supernets; instance ranges (/28) come from it.", "ipRange"),
    field("Description", nDesc, undefined, "description"),
    nStatus,
    h("button", { type: "submit" }, "Create network"),
  );
  netForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    nStatus.textContent = "";
    try {
      await call<Network>("POST", `${proj()}/networks`, { query: { networkId: nName.value.trim() }, body: { ipRange: nRange.value.trim(), description: nDesc.value } });
      showErrors(netForm, new Map());
      netForm.reset();
      void load();
    } catch (err) {
      const ae = err as ApiError;
      const rest: string[] = [];
      if (!showErrors(netForm, ae.fields, rest) || rest.length) nStatus.textContent = `${ae.status}: ${ae.message}`;
    }
  });

  // Create a connector.
  const cName = h("input", { id: "connector-id", name: "connectorId", autocomplete: "off" });
  const cNet = h("input", { id: "connector-network", name: "network", value: "default" });
  const cStatus = h("p", { class: "form-error", role: "alert" });
  const cOps = h("div", { class: "ops", "aria-live": "polite" });
  const conForm = h(
    "form",
    { class: "card", novalidate: true, "aria-labelledby": "new-connector-h" },
    h("h2", { id: "new-connector-h" }, "Create a connector"),
    field("Name", cName, undefined, "connectorId"),
    field("Network", cNet, "The network it reaches.", "network"),
    cStatus,
    h("button", { type: "submit" }, "Create connector"),
    cOps,
  );
  conForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    cStatus.textContent = "";
    try {
      const op = await call<Operation>("POST", `${loc()}/connectors`, { query: { connectorId: cName.value.trim(), requestId: requestId() }, body: { network: cNet.value.trim() } });
      showErrors(conForm, new Map());
      const box = h("div");
      cOps.prepend(box);
      stops.push(follow(op, box, () => void load()));
    } catch (err) {
      const ae = err as ApiError;
      const rest: string[] = [];
      if (!showErrors(conForm, ae.fields, rest) || rest.length) cStatus.textContent = `${ae.status}: ${ae.message}`;
    }
  });

  replace(
    main,
    h("h1", null, "Networks and connectors"),
    status,
    h("section", { "aria-labelledby": "networks-h" }, h("h2", { id: "networks-h" }, "Networks"), netBody),
    h("section", { "aria-labelledby": "connectors-h" }, h("h2", { id: "connectors-h" }, "Connectors"), conBody),
    h("div", { class: "grid" }, netForm, conForm),
  );
  void load();
  return () => stops.forEach((s) => s());
}

/** A table with a caption, column headers and the first cell of each row as its header. */
export function simpleTable(caption: string, cols: string[], rows: (string | Node)[][]): HTMLElement {
  if (!rows.length) return h("p", { class: "empty" }, `No ${caption.toLowerCase()}.`);
  return h(
    "table",
    { class: "list" },
    h("caption", { class: "sr-only" }, caption),
    h("thead", null, h("tr", null, ...cols.map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      null,
      ...rows.map((r) => h("tr", null, ...r.map((cell, i) => (i === 0 ? h("th", { scope: "row" }, cell) : h("td", { "data-label": cols[i] }, cell))))),
    ),
  );
}
