// The Cacheplane console: a single-page app over the public /v1 API.

import "./style.css";
import { clearSession, session, whenUnauthenticated } from "./api";
import { h, replace } from "./dom";
import { fallback, href, interceptLinks, navigate, render, route, current } from "./router";
import { signIn } from "./pages/signin";
import { instancesPage } from "./pages/instances";
import { createPage } from "./pages/create";
import { instancePage } from "./pages/instance";
import { networksPage } from "./pages/networks";
import { catalogPage } from "./pages/catalog";

/** Only signed-in users see a page; others go to the sign-in form. */
function guarded(page: Parameters<typeof route>[2]): Parameters<typeof route>[2] {
  return (main, params) => {
    if (!session()) {
      navigate(`/signin?next=${encodeURIComponent(current())}`, true);
      return;
    }
    shell();
    return page(main, params);
  };
}

/** The header: navigation, where the user looks, sign-out. */
function shell(): void {
  const s = session();
  const header = document.getElementById("header") as HTMLElement;
  replace(
    header,
    h("a", { class: "brand", href: href("/") }, "Cacheplane"),
    h(
      "nav",
      { "aria-label": "Main" },
      h("a", { href: href("/"), "data-section": "/" }, "Instances"),
      h("a", { href: href("/networks"), "data-section": "/networks" }, "Networks"),
      h("a", { href: href("/catalog"), "data-section": "/catalog" }, "Catalog"),
    ),
    s &&
      h(
        "div",
        { class: "who" },
        h("span", { class: "scope", title: "Project and region" }, `${s.project} · ${s.region}`),
        h(
          "button",
          {
            type: "button",
            class: "link",
            onclick: () => {
              clearSession();
              navigate("/signin");
            },
          },
          "Sign out",
        ),
      ),
  );
}

whenUnauthenticated(() => {
  clearSession();
  navigate(`/signin?next=${encodeURIComponent(current())}`, true);
});

route("/signin", "Sign in", (main) => {
  replace(document.getElementById("header") as HTMLElement, h("span", { class: "brand" }, "Cacheplane"));
  return signIn(main);
});
route("/", "Instances", guarded(instancesPage));
route("/instances/new", "Create an instance", guarded(createPage));
route("/instances/:id", "Instance", guarded(instancePage));
route("/networks", "Networks and connectors", guarded(networksPage));
route("/catalog", "Regions, zones and tiers", guarded(catalogPage));
fallback((main) => {
  replace(main, h("h1", null, "Not found"), h("p", null, h("a", { href: href("/") }, "Back to the instances")));
});

interceptLinks();
void render();
