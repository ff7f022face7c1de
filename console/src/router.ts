// Client-side routes under /console (the API answers index.html for each of them).

export const BASE = "/console";

/** What a page leaves running (timers), stopped when the user leaves it. */
export type Cleanup = () => void;

type Page = (main: HTMLElement, params: Record<string, string>) => Cleanup | void | Promise<Cleanup | void>;

interface Route {
  pattern: RegExp;
  keys: string[];
  page: Page;
  title: string;
}

const routes: Route[] = [];
let cleanup: Cleanup | void;
let notFound: Page = () => {};

/** Adds a route: `path` like `/instances/:id`. */
export function route(path: string, title: string, page: Page): void {
  const keys: string[] = [];
  const pattern = new RegExp(
    "^" + path.replace(/:([a-zA-Z]+)/g, (_, k: string) => (keys.push(k), "([^/]+)")) + "/?$",
  );
  routes.push({ pattern, keys, page, title });
}

export function fallback(page: Page): void {
  notFound = page;
}

/** Goes to `path` (relative to /console) without reloading. */
export function navigate(path: string, replace = false): void {
  const url = BASE + path;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  void render();
}

/** The current path relative to /console. */
export function current(): string {
  const p = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  return p === "" ? "/" : p;
}

/** Renders the page of the current URL into `<main>`, and moves focus to its heading. */
export async function render(): Promise<void> {
  if (cleanup) cleanup();
  cleanup = undefined;
  const main = document.getElementById("main") as HTMLElement;
  main.replaceChildren();
  const path = current();
  for (const r of routes) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    const params: Record<string, string> = {};
    r.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1])));
    document.title = `${r.title} · Cacheplane console`;
    cleanup = await r.page(main, params);
    focusHeading(main);
    markNav(path);
    return;
  }
  document.title = "Not found · Cacheplane console";
  cleanup = await notFound(main, {});
  focusHeading(main);
}

function focusHeading(main: HTMLElement): void {
  const h1 = main.querySelector("h1");
  if (h1) {
    h1.setAttribute("tabindex", "-1");
    h1.focus({ preventScroll: true });
  }
}

function markNav(path: string): void {
  document.querySelectorAll<HTMLAnchorElement>("nav a[data-section]").forEach((a) => {
    const section = a.dataset.section ?? "";
    const active = section === "/" ? path === "/" || path.startsWith("/instances") : path.startsWith(section);
    if (active) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
}

/** Makes same-app links (`<a href="/console/…">`) navigate without reloading. */
export function interceptLinks(): void {
  document.addEventListener("click", (e) => {
    const a = (e.target as Element).closest?.("a");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target) return;
    const href = a.getAttribute("href") ?? "";
    if (!href.startsWith(BASE)) return;
    e.preventDefault();
    navigate(href.slice(BASE.length) || "/");
  });
  window.addEventListener("popstate", () => void render());
}

/** An href inside the app. */
export function href(path: string): string {
  return BASE + path;
}
