// Long-running operations: a progress bar that follows an operation live (polling it
// every second) until it is done, without reloading the page.

import { call, Operation, shortName } from "./api";
import { announce, h, replace } from "./dom";

/** Polls `op` every second until done (or `stop()`); calls `onDone` at the end. */
export function follow(
  op: Operation,
  box: HTMLElement,
  onDone?: (op: Operation) => void,
): () => void {
  let stopped = false;
  let timer: number | undefined;
  const show = (o: Operation) => replace(box, progress(o));
  show(op);
  const tick = async () => {
    if (stopped) return;
    try {
      const o = await call<Operation>("GET", `/v1/${op.name}`);
      show(o);
      if (o.done) {
        announce(`${o.metadata.verb} of ${shortName(o.metadata.target)} ${o.error ? "failed" : "finished"}`);
        onDone?.(o);
        return;
      }
    } catch {
      // The next tick tries again: a restart of the API does not lose the operation.
    }
    timer = window.setTimeout(tick, 1000);
  };
  if (!op.done) timer = window.setTimeout(tick, 500);
  else onDone?.(op);
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

/** An operation's line: verb, target, a progress bar, its state or error. */
export function progress(o: Operation): HTMLElement {
  const pct = o.done ? 100 : o.metadata.progress;
  const state = o.done ? (o.error ? "failed" : "done") : "running";
  return h(
    "div",
    { class: `op op-${state}`, "data-operation": shortName(o.name), "data-state": state },
    h("span", { class: "op-verb" }, o.metadata.verb),
    " ",
    h("span", { class: "op-target" }, shortName(o.metadata.target)),
    h("progress", { max: 100, value: pct, "aria-label": `${o.metadata.verb} progress` }),
    h(
      "span",
      { class: "op-state" },
      o.error
        ? `${o.error.status ?? "failed"}: ${o.error.message}`
        : o.done
          ? "done"
          : `${pct}%${o.metadata.statusDetail ? ` · ${o.metadata.statusDetail}` : ""}`,
    ),
  );
}
