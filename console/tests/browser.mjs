// The console in a real browser (Debian's Chromium driven by playwright-core) against a
// real API, PostgreSQL and node agents running redis-server: sign in, see a field
// error for a bad size, create an HA instance through the form and watch it become
// READY, reveal its AUTH string and send it traffic, scale it, fail it over and see
// the marker on the charts, visit every page (at 1280 px and 390 px), delete it.
// Screenshots of every page go to $CONSOLE_SCREENSHOTS.
//
// Started by api/tests/console_browser.rs, which starts the stack. Environment:
//   CONSOLE_URL          http://127.0.0.1:PORT/console/
//   CONSOLE_TOKEN        a token of the project (environment only: never argv)
//   CONSOLE_PROJECT      the project
//   CONSOLE_SCREENSHOTS  where the screenshots go
//   CHROMIUM             the browser (default /usr/bin/chromium)
// Exits 0 when every step passed, 1 (naming the step) otherwise.

import { spawn, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = process.env.CONSOLE_URL;
const token = process.env.CONSOLE_TOKEN;
const project = process.env.CONSOLE_PROJECT;
const shots = process.env.CONSOLE_SCREENSHOTS ?? "console-screenshots";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
if (!url || !token || !project) {
  console.error("CONSOLE_URL, CONSOLE_TOKEN and CONSOLE_PROJECT are required");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const NAME = "web-cache";
// A BASIC instance the Rust test made through the API: the list has two pages of one.
const OTHER = "basic-cache";
let step = "start";
let traffic; // the interval sending commands to the instance
const seen = []; // every URL and console message, checked for the token at the end

function log(msg) {
  console.log(`[console-browser] ${msg}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  log(`screenshot ${name}.png`);
}

/** A link of the main navigation. */
function nav(page, name) {
  return page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root in CI has no user namespaces for Chromium's sandbox.
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, permissions: ["clipboard-read", "clipboard-write"] });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
page.on("console", (m) => seen.push(m.text()));
page.on("framenavigated", (f) => seen.push(f.url()));
page.on("request", (r) => seen.push(r.url()));
page.on("pageerror", (e) => {
  console.error(`[console-browser] page error: ${e.message}`);
  seen.push(`PAGEERROR ${e.message}`);
});

try {
  step = "sign-in form";
  await page.goto(url);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert(page.url().includes("/console/signin"), `not sent to sign-in: ${page.url()}`);
  await shot(page, "01-sign-in");

  step = "a wrong token is refused";
  await page.getByLabel("Token").fill("not-a-token");
  await page.getByLabel("Project").fill(project);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator('[data-error-for="token"]', { hasText: "not valid" }).waitFor();

  step = "sign in";
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Instances" }).waitFor();
  await page.locator(`tr[data-instance="${OTHER}"]`).waitFor();
  const stored = await page.evaluate(() => Object.keys(sessionStorage));
  assert(stored.length === 1, `sessionStorage holds ${stored}`);
  assert((await page.evaluate(() => Object.keys(localStorage))).length === 0, "localStorage is used");

  step = "create form: a bad size is a field error";
  await page.getByRole("link", { name: "Create instance" }).click();
  await page.getByRole("heading", { name: "Create an instance" }).waitFor();
  await page.getByLabel("Instance id").fill(NAME);
  await page.getByLabel("Tier").selectOption("STANDARD_HA");
  await page.getByLabel("Memory size (GB)").fill("0");
  await page.getByRole("button", { name: "Create", exact: true }).click();
  const sizeError = page.locator('[data-error-for="memorySizeGb"]');
  await sizeError.filter({ hasText: /\S/ }).waitFor();
  assert((await page.getByLabel("Memory size (GB)").getAttribute("aria-invalid")) === "true", "the size field is not marked invalid");
  assert(await page.getByLabel("Memory size (GB)").evaluate((el) => el === document.activeElement), "focus is not on the size field");
  log(`size error: ${await sizeError.textContent()}`);
  await shot(page, "02-create-field-error");

  step = "create form: a bad label key is an error under the labels";
  await page.getByLabel("Memory size (GB)").fill("1");
  await page.getByLabel("Labels", { exact: true }).fill("Team=web");
  await page.getByRole("button", { name: "Create", exact: true }).click();
  await page.locator('[data-error-for="labels"]', { hasText: "labels.Team" }).waitFor();
  assert((await sizeError.textContent()) === "", "the size error stayed");

  step = "create an HA instance";
  await page.locator("#readReplicasMode").check();
  await page.getByLabel("Replicas", { exact: true }).fill("2");
  await page.getByLabel("maxmemory-policy").selectOption("allkeys-lru");
  await page.getByLabel("Labels", { exact: true }).fill("env=test\nteam=web");
  await page.getByRole("button", { name: "Create", exact: true }).click();
  await page.locator(".op").first().waitFor();
  await shot(page, "03-create-progress");

  step = "the instance becomes READY";
  await page.waitForURL(`**/console/instances/${NAME}`, { timeout: 90_000 });
  await page.locator("h1 .badge", { hasText: "READY" }).waitFor({ timeout: 90_000 });
  const endpoint = (await page.getByTestId("endpoint").locator("code").textContent()) ?? "";
  assert(/^\d+\.\d+\.\d+\.\d+:\d+$/.test(endpoint), `endpoint: ${endpoint}`);
  assert(await page.getByTestId("read-endpoint").isVisible(), "no read endpoint");
  const zones = await page.locator(".zone h3").allTextContents();
  assert(zones.length === 3, `nodes in zones ${zones}`);
  assert((await page.locator('.nodes li[data-role="PRIMARY"]').count()) === 1, "not one primary");
  assert((await page.locator('.nodes li[data-role="REPLICA"]').count()) === 2, "not two replicas");
  await page.getByText("env=test").waitFor();
  await page.getByText("allkeys-lru").waitFor();

  step = "reveal the AUTH string and use it";
  assert((await page.getByTestId("auth-string").count()) === 0, "the AUTH string shows before Reveal");
  await page.getByRole("button", { name: "Reveal" }).click();
  const auth = (await page.getByTestId("auth-string").textContent()) ?? "";
  assert(auth.length >= 16, "no AUTH string");
  const [host, port] = endpoint.split(":");
  const commands = Array.from({ length: 300 }, (_, i) => (i % 3 ? `GET k${i % 50}` : `SET k${i} v${i}`)).join("\n") + "\n";
  const cli = spawnSync("redis-cli", ["-h", host, "-p", port, "--no-auth-warning"], { input: commands, env: { ...process.env, REDISCLI_AUTH: auth }, encoding: "utf8" });
  assert(cli.status === 0 && cli.stdout.includes("OK"), `redis-cli through the endpoint: ${cli.stdout.slice(0, 200)} ${cli.stderr}`);
  await page.getByRole("button", { name: "Hide" }).click();
  // Traffic for the charts until the delete: every second a batch of writes and reads
  // (hits and misses) through the primary endpoint, in a new connection each time, so
  // that it follows the endpoint through the failover.
  traffic = setInterval(() => {
    const batch = Array.from({ length: 60 }, (_, i) => (i % 4 ? `GET k${Math.floor(Math.random() * 400)}` : `SET k${Math.floor(Math.random() * 300)} v`)).join("\n") + "\n";
    const p = spawn("redis-cli", ["-h", host, "-p", port, "--no-auth-warning"], { env: { ...process.env, REDISCLI_AUTH: auth }, stdio: ["pipe", "ignore", "ignore"] });
    p.on("error", () => {});
    p.stdin.end(batch);
  }, 1000);

  step = "the charts fill";
  await page.waitForFunction(() => Number(document.querySelector("[data-samples]")?.getAttribute("data-samples") ?? 0) >= 6, null, { timeout: 60_000 });
  assert((await page.locator("[data-chart]").count()) === 5, "five charts");
  await shot(page, "04-instance");

  step = "scale to 2 GB";
  await page.getByRole("button", { name: "Scale" }).click();
  await page.getByLabel("Memory size (GB)").fill("2");
  await page.getByRole("dialog").getByRole("button", { name: "Scale" }).click();
  await page.locator('.op[data-state="done"]', { hasText: "update" }).first().waitFor({ timeout: 60_000 });
  await page.locator('[data-prop="Memory size"]', { hasText: "2 GB" }).waitFor();
  await page.locator("h1 .badge", { hasText: "READY" }).waitFor({ timeout: 60_000 });
  await shot(page, "05-scaled");

  step = "fail over (limited data loss)";
  const primaryBefore = await page.locator('.zone:has(li[data-role="PRIMARY"]) h3').textContent();
  await page.getByRole("button", { name: "Failover" }).click();
  assert(await page.getByLabel("Limited data loss (recommended)").isChecked(), "limited data loss is not the default");
  await shot(page, "06-failover-dialog");
  await page.getByRole("dialog").getByRole("button", { name: "Fail over" }).click();
  await page.locator('.op[data-state="done"]', { hasText: "failover" }).first().waitFor({ timeout: 60_000 });
  await page.locator("h1 .badge", { hasText: "READY" }).waitFor({ timeout: 60_000 });
  await page.locator(".failover-marker").first().waitFor({ timeout: 30_000 });
  await page
    .waitForFunction((before) => document.querySelector('.zone:has(li[data-role="PRIMARY"]) h3')?.textContent !== before, primaryBefore, { timeout: 30_000 })
    .catch(() => {
      throw new Error(`the primary stayed in ${primaryBefore}`);
    });
  assert(Number(await page.locator("[data-failovers]").getAttribute("data-failovers")) >= 1, "no failover on the charts");
  // Samples after the failover, on both sides of the marker.
  await page.waitForFunction(
    () => {
      const c = document.querySelector("[data-last-sample]");
      return Number(c?.getAttribute("data-last-sample")) > Number(c?.getAttribute("data-last-failover")) + 10;
    },
    null,
    { timeout: 60_000 },
  );
  await shot(page, "07-failover-marker");

  step = "the instance page at 390 px";
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, "08-instance-390px");

  step = "the instances list";
  await nav(page, "Instances").click();
  await page.locator(`tr[data-instance="${NAME}"]`).waitFor();
  await shot(page, "09-instances-390px");
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.getByLabel("State").selectOption("FAILED");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByText("No instances match.").waitFor();
  await page.getByLabel("State").selectOption("READY");
  await page.getByLabel("Labels").fill("env=test");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.locator(`tr[data-instance="${NAME}"]`).waitFor();
  assert((await page.locator(`tr[data-instance="${OTHER}"]`).count()) === 0, `${OTHER} matches env=test`);

  step = "the instances list in pages";
  await page.goto(`${url.replace(/\/$/, "")}/?pageSize=1`);
  await page.locator("tbody tr").first().waitFor();
  assert((await page.locator("tbody tr").count()) === 1, "not one instance per page");
  const firstPage = await page.locator("tbody tr").getAttribute("data-instance");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByText("Page 2").waitFor();
  const secondPage = await page.locator("tbody tr").getAttribute("data-instance");
  assert(firstPage !== secondPage && [NAME, OTHER].includes(secondPage ?? ""), `pages hold ${firstPage} and ${secondPage}`);
  assert(await page.getByRole("button", { name: "Next" }).isDisabled(), "a third page");
  await page.getByRole("button", { name: "Previous" }).click();
  await page.getByText("Page 1").waitFor();
  await page.locator(`tbody tr[data-instance="${firstPage}"]`).waitFor();
  await page.goto(url);
  await page.locator(`tr[data-instance="${NAME}"]`).waitFor();
  await shot(page, "10-instances");

  step = "networks and connectors";
  await nav(page, "Networks").click();
  await page.getByRole("heading", { name: "Networks and connectors" }).waitFor();
  await page.getByRole("row", { name: /default/ }).first().waitFor();
  await page.getByLabel("Name").first().fill("bad_name");
  await page.getByLabel("Address pool").fill("10.99.0.0/16");
  await page.getByRole("button", { name: "Create network" }).click();
  await page.locator('[data-error-for="networkId"], .form-error').filter({ hasText: /\S/ }).first().waitFor();
  await page.getByLabel("Name").nth(1).fill("app");
  await page.getByRole("button", { name: "Create connector" }).click();
  await page.locator('.op[data-state="done"]', { hasText: "app" }).waitFor({ timeout: 60_000 });
  await page.getByRole("rowheader", { name: "app" }).waitFor();
  await shot(page, "11-networks");

  step = "catalog";
  await nav(page, "Catalog").click();
  await page.getByRole("cell", { name: "STANDARD_HA" }).or(page.getByRole("rowheader", { name: "STANDARD_HA" })).first().waitFor();
  await shot(page, "12-catalog");

  step = "keyboard: the skip link comes first, then the navigation";
  await page.evaluate(() => document.activeElement?.blur?.());
  await page.keyboard.press("Tab");
  assert(await page.evaluate(() => document.activeElement?.textContent === "Skip to content"), "the skip link is not first");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  assert(await page.evaluate(() => document.activeElement?.textContent === "Instances"), "the navigation does not follow");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Instances" }).waitFor();
  assert(await page.evaluate(() => document.activeElement?.tagName === "H1"), "focus did not move to the new page's heading");

  step = "delete (typing the name)";
  clearInterval(traffic);
  await page.goto(`${url.replace(/\/$/, "")}/instances/${NAME}`);
  await page.locator("h1 .badge", { hasText: "READY" }).waitFor();
  await page.getByRole("button", { name: "Delete" }).click();
  const confirm = page.getByRole("dialog").getByRole("button", { name: "Delete" });
  assert(await confirm.isDisabled(), "delete is enabled before the name is typed");
  await page.getByLabel(`Type ${NAME} to confirm`).fill(NAME.slice(0, 3));
  assert(await confirm.isDisabled(), "delete is enabled with a wrong name");
  await page.getByLabel(`Type ${NAME} to confirm`).fill(NAME);
  await shot(page, "13-delete-dialog");
  await confirm.click();
  await page.getByRole("heading", { name: "Instances" }).waitFor({ timeout: 60_000 });
  await page.locator(`tr[data-instance="${OTHER}"]`).waitFor();
  await page.locator(`tr[data-instance="${NAME}"]`).waitFor({ state: "detached", timeout: 30_000 });
  await shot(page, "14-deleted");

  step = "the token never left the Authorization header";
  const leaked = seen.filter((s) => s.includes(token));
  assert(leaked.length === 0, `the token appears in ${leaked.length} URLs or log lines`);
  const errors = seen.filter((s) => s.startsWith("PAGEERROR") || s.includes("Content Security Policy"));
  assert(errors.length === 0, `page errors or CSP violations: ${errors.join("; ")}`);
  log("all steps passed");
  await browser.close();
  process.exit(0);
} catch (e) {
  clearInterval(traffic);
  console.error(`[console-browser] FAILED at "${step}": ${e.message}`);
  try {
    await shot(page, "failure");
  } catch {
    // The page may be gone.
  }
  await browser.close();
  process.exit(1);
}
