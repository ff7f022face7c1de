// The instance page's monitoring charts, from `GET …/instances/{id}/metrics` (the API
// keeps each node's figures every 10 s for two hours): memory used vs maxmemory,
// commands/s, keyspace hit ratio, connected clients and replication lag per replica.
// Failovers are vertical markers on every chart, and listed in text below them.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { call, loc } from "./api";
import { bytes, h, replace } from "./dom";

interface Point {
  time: string;
  role?: string;
  up: boolean;
  usedMemoryBytes?: number;
  maxmemoryBytes?: number;
  connectedClients?: number;
  commandsPerSecond?: number;
  hitRatio?: number;
  lagBytes?: number;
}

interface Series {
  id: string;
  zone: string;
  points: Point[];
}

interface Marker {
  time: string;
  endTime?: string;
  operation: string;
  failed: boolean;
}

export interface History {
  windowSeconds: number;
  stepSeconds: number;
  nodes: Series[];
  failovers: Marker[];
}

const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#0a7ea4"];

interface ChartSpec {
  id: string;
  title: string;
  value: (p: Point) => number | undefined;
  format: (v: number) => string;
  /** Which nodes have a series (lag: replicas only). */
  nodes?: (s: Series) => boolean;
  /** An extra dashed series per node (maxmemory). */
  limit?: (p: Point) => number | undefined;
  /** A logarithmic y axis (memory: megabytes used against gigabytes of maxmemory). */
  log?: boolean;
}

const CHARTS: ChartSpec[] = [
  {
    id: "memory",
    title: "Memory used (dashed: maxmemory; log scale)",
    value: (p) => p.usedMemoryBytes,
    limit: (p) => p.maxmemoryBytes,
    format: (v) => bytes(v),
    log: true,
  },
  { id: "commands", title: "Commands per second", value: (p) => p.commandsPerSecond, format: (v) => v.toFixed(1) },
  { id: "hits", title: "Keyspace hit ratio", value: (p) => (p.hitRatio === undefined ? undefined : p.hitRatio * 100), format: (v) => `${v.toFixed(0)} %` },
  { id: "clients", title: "Connected clients", value: (p) => p.connectedClients, format: (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)) },
  {
    id: "lag",
    title: "Replication lag per replica",
    value: (p) => (p.role === "REPLICA" ? p.lagBytes : undefined),
    nodes: (s) => s.points.some((p) => p.role === "REPLICA"),
    format: (v) => bytes(v),
  },
];

function label(s: Series): string {
  const role = s.points[s.points.length - 1]?.role ?? "";
  return `${s.zone} ${role.toLowerCase()} ${s.id.slice(0, 8)}`;
}

/** Draws the failover markers as vertical lines. */
function markers(times: number[]): uPlot.Plugin {
  return {
    hooks: {
      draw: (u: uPlot) => {
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#cf222e";
        ctx.lineWidth = 2 * devicePixelRatio;
        ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
        for (const t of times) {
          const x = u.valToPos(t, "x", true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
}

/** The charts of one instance; `refresh()` reloads them, `destroy()` frees them. */
export class Charts {
  readonly el: HTMLElement;
  private plots: uPlot[] = [];
  private grid = h("div", { class: "charts" });
  private note = h("p", { class: "hint" });
  private failovers = h("ul", { class: "failover-markers", "aria-label": "Failovers in the window" });
  private onResize = () => this.resize();

  constructor(private readonly instanceId: string) {
    this.el = h(
      "section",
      { class: "card", "aria-labelledby": "monitoring-h" },
      h("h2", { id: "monitoring-h" }, "Monitoring"),
      this.note,
      this.grid,
      h("h3", null, "Failovers"),
      this.failovers,
    );
    window.addEventListener("resize", this.onResize);
  }

  async refresh(): Promise<void> {
    let hist: History;
    try {
      hist = await call<History>("GET", `${loc()}/instances/${encodeURIComponent(this.instanceId)}/metrics`, { query: { window: "1h" } });
    } catch (e) {
      this.note.textContent = `Metrics are not available: ${(e as Error).message}`;
      return;
    }
    this.render(hist);
  }

  private render(hist: History): void {
    this.plots.forEach((p) => p.destroy());
    this.plots = [];
    const samples = hist.nodes.reduce((n, s) => n + s.points.length, 0);
    this.note.textContent = samples
      ? `One point per node every ${hist.stepSeconds} s, as the agents reported them.`
      : "No samples yet: the first arrive within 10 s of the nodes' first reports.";
    this.el.dataset.samples = String(samples);
    this.el.dataset.failovers = String(hist.failovers.length);
    const times = hist.nodes.flatMap((s) => s.points.map((p) => Date.parse(p.time) / 1000));
    this.el.dataset.lastSample = String(times.length ? Math.max(...times) : 0);
    this.el.dataset.lastFailover = String(hist.failovers.length ? Date.parse(hist.failovers[hist.failovers.length - 1].time) / 1000 : 0);
    const markerTimes = hist.failovers.map((f) => Date.parse(f.time) / 1000);
    // The x axis spans the samples there are (a minute before the first), up to the
    // whole window: a new instance's minutes are not a sliver of an empty hour.
    const now = Date.now() / 1000;
    const first = Math.min(...hist.nodes.flatMap((s) => s.points.map((p) => Date.parse(p.time) / 1000)), now);
    const from = Math.max(now - hist.windowSeconds, Math.min(first, ...markerTimes) - 60);
    replace(
      this.failovers,
      hist.failovers.length
        ? hist.failovers.map((f) =>
            h("li", { class: "failover-marker" }, `${new Date(f.time).toLocaleTimeString()}: failover ${f.endTime ? (f.failed ? "failed" : "done") : "running"}`),
          )
        : h("li", null, "None in the last hour."),
    );
    // One x axis for all: every sample time of every node.
    const xs = [...new Set(hist.nodes.flatMap((s) => s.points.map((p) => Date.parse(p.time) / 1000)))].sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const column = (s: Series, f: (p: Point) => number | undefined) => {
      const col: (number | null)[] = xs.map(() => null);
      for (const p of s.points) {
        const v = f(p);
        col[at.get(Date.parse(p.time) / 1000)!] = v === undefined ? null : v;
      }
      return col;
    };
    const cards: HTMLElement[] = [];
    for (const spec of CHARTS) {
      const nodes = hist.nodes.filter(spec.nodes ?? (() => true));
      const data: uPlot.AlignedData = [xs, ...nodes.map((s) => column(s, spec.value))];
      const series: uPlot.Series[] = [
        {},
        ...nodes.map((s, i) => ({
          label: label(s),
          stroke: COLORS[i % COLORS.length],
          width: 2,
          spanGaps: false,
          points: { show: true, size: 4 },
          value: (_: uPlot, v: number | null) => (v === null ? "–" : spec.format(v)),
        })),
      ];
      if (spec.limit) {
        nodes.forEach((s, i) => {
          (data as (number | null)[][]).push(column(s, spec.limit!));
          series.push({ label: `maxmemory ${s.id.slice(0, 8)}`, stroke: COLORS[i % COLORS.length], dash: [4, 4], width: 1 });
        });
      }
      const box = h("div", { class: "chart", role: "img", "aria-label": `${spec.title}: ${nodes.length} series`, "data-chart": spec.id });
      cards.push(h("figure", { class: "chart-card" }, h("figcaption", null, spec.title), box));
      const opts: uPlot.Options = {
        width: 300,
        height: 180,
        series,
        axes: [{}, { size: 84, values: (_u, vals) => vals.map((v) => spec.format(v)) }],
        scales: { x: { time: true, range: () => [from, now] }, ...(spec.log ? { y: { distr: 3, log: 2 } } : {}) },
        legend: { live: false },
        plugins: [markers(markerTimes)],
      };
      this.plots.push(new uPlot(opts, data, box));
    }
    replace(this.grid, cards);
    this.resize();
  }

  private resize(): void {
    for (const p of this.plots) {
      const w = (p.root.parentElement?.clientWidth ?? 300) - 8;
      p.setSize({ width: Math.max(240, w), height: 180 });
    }
  }

  destroy(): void {
    window.removeEventListener("resize", this.onResize);
    this.plots.forEach((p) => p.destroy());
  }
}
