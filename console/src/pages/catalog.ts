// The catalog: regions with their zones, and the tiers with their limits.

import { ApiError, call, Region, TierInfo } from "../api";
import { h, replace } from "../dom";
import { simpleTable } from "./networks";

export async function catalogPage(main: HTMLElement): Promise<void> {
  replace(main, h("h1", null, "Regions, zones and tiers"), h("p", { class: "loading" }, "Loading…"));
  try {
    const [regions, tiers] = await Promise.all([call<{ regions: Region[] }>("GET", "/v1/regions"), call<{ tiers: TierInfo[] }>("GET", "/v1/tiers")]);
    replace(
      main,
      h("h1", null, "Regions, zones and tiers"),
      h("section", { "aria-labelledby": "regions-h" }, h("h2", { id: "regions-h" }, "Regions"), simpleTable("Regions", ["Region", "Zones"], regions.regions.map((r) => [r.regionId, r.zones.map((z) => z.slice(z.lastIndexOf("/") + 1)).join(", ")]))),
      h(
        "section",
        { "aria-labelledby": "tiers-h" },
        h("h2", { id: "tiers-h" }, "Tiers"),
        simpleTable(
          "Tiers",
          ["Tier", "Description", "Memory (GB)", "Replicas", "Automatic failover"],
          tiers.tiers.map((t) => [t.tier, t.description, `${t.minMemorySizeGb}–${t.maxMemorySizeGb}`, `${t.minReplicaCount}–${t.maxReplicaCount}`, t.automaticFailover ? "yes" : "no"]),
        ),
      ),
    );
  } catch (e) {
    replace(main, h("h1", null, "Regions, zones and tiers"), h("p", { class: "form-error", role: "alert" }, `${(e as ApiError).status}: ${(e as Error).message}`));
  }
}
