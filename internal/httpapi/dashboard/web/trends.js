// alertbridge dashboard, trends: after each dashboard refresh, reads
// /v1/alerts/trends for the same namespace and window and draws it with
// uPlot (vendor/uplot): new Alerts per interval stacked by status,
// occurrences stacked by severity, each release gate's decisions over time,
// and MTTA / MTTR.
"use strict";

(() => {
  const PHASE_COLORS = { New: "#1f6feb", Processing: "#9a6700", Acked: "#1a7f37", Failed: "#cf222e", Deduplicated: "#8c959f" };
  const SEVERITY_COLORS = { P0: "#6e0b0b", P1: "#cf222e", P2: "#d4a72c", P3: "#1f6feb", P4: "#8c959f" };
  const GATE_LEVELS = ["Allow", "Warn", "Block"];
  const GATE_COLORS = ["#2f81f7", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#0969da", "#6e7781"];
  const HEIGHT = 220;
  const charts = {};
  let inFlight = false;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = String(text);
    return e;
  }

  function widthOf(fig) { return Math.max(320, fig.clientWidth - 16); }

  function human(seconds) {
    if (!seconds) return "0s";
    const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + (s ? s + "s" : "");
    return s + "s";
  }

  // draw makes (or updates) the chart in figure id from opts and data; a
  // chart whose series changed is made again.
  function draw(id, key, opts, data) {
    const fig = document.getElementById(id);
    const c = charts[id];
    if (c && c.key === key) {
      c.plot.setData(data);
      return;
    }
    if (c) c.plot.destroy();
    opts.width = widthOf(fig);
    opts.height = HEIGHT;
    charts[id] = { key, plot: new uPlot(opts, data, fig) };
  }

  // stacked draws series (name → values) as stacked bars, the top of the
  // stack first so each band shows above the ones below it.
  function stacked(id, xs, names, values, colors, step) {
    const cum = [];
    let acc = xs.map(() => 0);
    for (const n of names) {
      acc = acc.map((v, i) => v + (values[n] ? values[n][i] : 0));
      cum.push(acc);
    }
    const order = names.map((n, i) => i).reverse();
    const bars = uPlot.paths.bars({ size: [0.85, Infinity], align: 1 });
    const series = [{}].concat(order.map((i) => ({
      label: names[i], stroke: colors[names[i]], fill: colors[names[i]], width: 0, paths: bars, points: { show: false },
      value: (u, v, si, idx) => (idx == null || !values[names[i]] ? "" : values[names[i]][idx]),
    })));
    const opts = {
      series, legend: { live: false },
      scales: { x: { time: true, range: (u, min, max) => [min, max + step] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [{}, { size: 40 }],
      cursor: { drag: { x: false, y: false } },
    };
    const fig = document.getElementById(id);
    let total = 0;
    for (const n of names) for (const v of values[n] || []) total += v;
    fig.dataset.total = String(total);
    fig.dataset.max = String(Math.max(0, ...cum[cum.length - 1]));
    draw(id, names.join(","), opts, [xs].concat(order.map((i) => cum[i])));
  }

  function gates(id, t, nowSec) {
    const fig = document.getElementById(id);
    fig.dataset.gates = String(t.gates.length);
    const start = Date.parse(t.buckets[0]) / 1000;
    const times = new Set([start, nowSec]);
    for (const g of t.gates) for (const p of g.points) times.add(Math.max(start, Date.parse(p.at) / 1000));
    const xs = [...times].sort((a, b) => a - b);
    const series = [{}];
    const data = [xs];
    t.gates.forEach((g, gi) => {
      const pts = g.points.map((p) => ({ at: Date.parse(p.at) / 1000, level: GATE_LEVELS.indexOf(p.decision) }));
      const offset = (gi - (t.gates.length - 1) / 2) * 0.08;
      data.push(xs.map((x) => {
        let v = null;
        for (const p of pts) if (p.at <= x || (p.at < start && x === start)) v = p.level;
        return v == null || v < 0 ? null : v + offset;
      }));
      series.push({
        label: g.namespace + "/" + g.name, stroke: GATE_COLORS[gi % GATE_COLORS.length], width: 3,
        // Points mark each decision, so a change minutes old still shows.
        paths: uPlot.paths.stepped({ align: 1 }), points: { show: true, size: 8, fill: GATE_COLORS[gi % GATE_COLORS.length] },
        value: (u, v) => (v == null ? "" : GATE_LEVELS[Math.round(v)]),
      });
    });
    fig.dataset.decisions = t.gates.map((g) => g.name + ":" + g.points.map((p) => p.decision).join(">")).join(" ");
    const opts = {
      series, legend: { live: false },
      scales: { x: { time: true, range: () => [start, nowSec] }, y: { range: () => [-0.5, 2.5] } },
      axes: [{}, { size: 56, splits: () => [0, 1, 2], values: (u, vals) => vals.map((v) => GATE_LEVELS[v] || "") }],
      cursor: { drag: { x: false, y: false } },
    };
    draw(id, t.gates.map((g) => g.namespace + "/" + g.name).join(","), opts, data);
  }

  function times(t) {
    const box = document.getElementById("trend-times");
    const tile = (id, name, d, what) => {
      const e = el("div", "time", null);
      e.id = id;
      e.dataset.count = String(d.count);
      e.append(el("span", "n", d.count ? human(d.meanSeconds) : "–"), el("span", "label", name),
        el("span", "muted", d.count ? "median " + human(d.medianSeconds) + " · max " + human(d.maxSeconds) + " · " + d.count + " " + what : "none " + what + " in the window"));
      return e;
    };
    box.replaceChildren(tile("mtta", "MTTA (created → acked)", t.mtta, "acked"), tile("mttr", "MTTR (opened → resolved)", t.mttr, "resolved"));
  }

  function render(t) {
    const xs = t.buckets.map((b) => Date.parse(b) / 1000);
    stacked("trend-new", xs, Object.keys(PHASE_COLORS), t.newAlerts, PHASE_COLORS, t.intervalSeconds);
    stacked("trend-occ", xs, Object.keys(SEVERITY_COLORS), t.occurrences, SEVERITY_COLORS, t.intervalSeconds);
    gates("trend-gates", t, Date.parse(t.generatedAt) / 1000);
    times(t);
    const every = t.intervalSeconds >= 3600 ? t.intervalSeconds / 3600 + " h" : t.intervalSeconds / 60 + " min";
    document.getElementById("trends-note").textContent = "· per " + every + " · from the " + (t.source === "mirror" ? "mirror (PostgreSQL history)" : "cluster");
    document.getElementById("trends").dataset.source = t.source;
  }

  document.addEventListener("alertbridge:dashboard", async (ev) => {
    if (inFlight || typeof uPlot === "undefined") return;
    inFlight = true;
    try {
      const resp = await fetch("/v1/alerts/trends?" + ev.detail.params, { headers: ev.detail.headers, cache: "no-store" });
      const body = await resp.json();
      if (!resp.ok) {
        document.getElementById("trends-note").textContent = "· cannot show trends: " + (body.message || resp.statusText);
        return;
      }
      render(body);
    } catch (e) {
      document.getElementById("trends-note").textContent = "· cannot show trends: " + e.message;
    } finally {
      inFlight = false;
    }
  });
})();
