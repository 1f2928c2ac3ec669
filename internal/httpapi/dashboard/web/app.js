// alertbridge dashboard: reads /v1/alerts/dashboard every few seconds and
// renders it. The token (if any) stays in this tab's sessionStorage and is
// sent as a bearer token; with --dashboard-anonymous none is needed.
"use strict";

const REFRESH_MS = 3000;
const PHASES = ["New", "Processing", "Acked", "Failed", "Deduplicated"];
const store = window.sessionStorage;
let timer = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 90) return s + "s ago";
  if (s < 5400) return Math.round(s / 60) + "m ago";
  if (s < 129600) return Math.round(s / 3600) + "h ago";
  return Math.round(s / 86400) + "d ago";
}

function until(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
  if (s < 90) return "in " + s + "s";
  if (s < 5400) return "in " + Math.round(s / 60) + "m";
  if (s < 129600) return "in " + Math.round(s / 3600) + "h";
  return "in " + Math.round(s / 86400) + "d";
}

function fillTable(id, rows, cols, emptyText) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  if (rows.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: String(cols), class: "empty" }, emptyText)));
    return;
  }
  for (const r of rows) body.append(r);
}

// notificationCell shows what the Incident's Receivers were last told: the
// receiver, the event and whether it was delivered, is pending a retry or
// was given up (the error is the cell's tooltip).
function notificationCell(n) {
  if (!n) return el("td", { class: "empty" }, "none");
  const when = n.result === "delivered" ? " " + ago(n.at)
    : " (" + n.attempts + (n.attempts === 1 ? " attempt)" : " attempts)");
  const attrs = { class: "notification" };
  if (n.lastError) attrs.title = n.lastError;
  return el("td", attrs, n.receiver + " " + n.event + " ",
    el("span", { class: "pill notify-" + n.result }, n.result), when);
}

// budgetCell shows each error-budget objective of a gate: the budget left
// and the current burn rate (over the shortest alerting window).
function budgetCell(g) {
  const td = el("td", { class: "budget" });
  for (const b of g.budgets || []) {
    const left = b.remainingPercent ? b.remainingPercent + "% left" : "no data";
    const burn = b.burnRate ? " · burn " + b.burnRate + "× (" + b.burnRateWindow + ")" : "";
    const cls = (b.burning || []).length ? "burning" : "";
    td.append(el("div", { class: cls, title: b.objective + " " + b.target + "% over " + b.window + (b.burning ? ", burning: " + b.burning.join(", ") : "") },
      b.objective + ": " + left + burn));
  }
  return td;
}

function render(d) {
  const counts = document.getElementById("counts");
  counts.replaceChildren(...PHASES.map((p) =>
    el("div", { class: "count " + p, id: "count-" + p, "data-count": String(d.counts[p] || 0) },
      el("span", { class: "n" }, d.counts[p] || 0), el("span", { class: "label" }, p))));
  document.getElementById("occurrences").textContent = "· " + d.occurrences + " occurrences";

  fillTable("signatures", d.topSignatures.map((s) =>
    el("tr", {}, el("td", {}, s.signature), el("td", { class: "num" }, s.alerts), el("td", { class: "num" }, s.occurrences))),
  3, "No alerts in the window.");

  fillTable("gates", d.gates.map((g) =>
    el("tr", { "data-ns": g.namespace, "data-name": g.name, "data-reason": g.reason || "" }, el("td", {}, g.namespace + "/" + g.name), el("td", {}, g.service), el("td", {}, g.env),
      el("td", {}, el("span", { class: "pill " + (g.decision || "") }, g.decision || "pending")),
      el("td", {}, g.reason || ""), budgetCell(g))),
  6, "No SLOPolicies.");

  document.getElementById("silenced").textContent = "· " + (d.silenced || 0) + " alerts silenced";
  fillTable("silences", (d.silences || []).map((s) =>
    el("tr", {}, el("td", {}, s.namespace + "/" + s.name), el("td", {}, el("span", { class: "pill " + s.state }, s.state)),
      el("td", {}, el("code", {}, s.matchers)), el("td", { class: "num" }, s.alerts), el("td", {}, s.createdBy),
      el("td", { title: s.endsAt }, until(s.endsAt)), el("td", {}, s.comment))),
  7, "No active or pending Silences.");

  const bySvc = new Map();
  for (const i of d.openIncidents) {
    if (!bySvc.has(i.service)) bySvc.set(i.service, []);
    bySvc.get(i.service).push(i);
  }
  const inc = document.getElementById("incidents");
  inc.replaceChildren();
  if (bySvc.size === 0) inc.append(el("p", { class: "empty" }, "No open incidents."));
  for (const [svc, items] of [...bySvc.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    const t = el("table", { class: "incidents" },
      el("thead", {}, el("tr", {}, ...["Severity", "State", "Env", "Title", "Alerts", "Last activity", "Last notification", "Name"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...items.map((i) => el("tr", { "data-ns": i.namespace, "data-name": i.name, "data-state": i.state },
        el("td", { class: "sev-" + i.severity }, i.severity), el("td", {}, i.state), el("td", {}, i.env),
        el("td", {}, i.title), el("td", { class: "num" }, i.alertCount), el("td", {}, ago(i.lastActivityAt)),
        notificationCell(i.lastNotification), el("td", {}, i.namespace + "/" + i.name)))));
    inc.append(el("h3", {}, svc + " (" + items.length + ")"), t);
  }

  fillTable("latest", d.latest.map((a) =>
    el("tr", { "data-ns": a.namespace, "data-name": a.name, "data-phase": a.phase }, el("td", { title: a.lastSeenAt }, ago(a.lastSeenAt)),
      el("td", { title: a.silencedBy || "" }, el("span", { class: "pill " + a.phase }, a.phase),
        a.silencedBy ? el("span", { class: "pill Silenced" }, "silenced") : ""),
      el("td", { class: "sev-" + a.severity }, a.severity), el("td", {}, a.service), el("td", {}, a.env),
      el("td", {}, a.kind), el("td", {}, a.title), el("td", { class: "num" }, a.occurrences),
      el("td", {}, a.holder || ""), el("td", {}, a.namespace + "/" + a.name))),
  10, "No alerts in the window.");
}

function setStatus(text, isError) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

async function refresh() {
  const params = new URLSearchParams({ windowMinutes: store.getItem("window") || "240" });
  const ns = store.getItem("namespace");
  if (ns) params.set("namespace", ns);
  const headers = { Accept: "application/json" };
  const token = store.getItem("token");
  if (token) headers.Authorization = "Bearer " + token;
  try {
    const resp = await fetch("/v1/alerts/dashboard?" + params, { headers, cache: "no-store" });
    const body = await resp.json();
    if (!resp.ok) {
      const hint = resp.status === 401 ? " Enter a token (kubectl create token NAME --audience alertbridge) above." : "";
      setStatus("Error " + resp.status + ": " + (body.message || resp.statusText) + "." + hint, true);
      return;
    }
    render(body);
    // trends.js and actions.js draw their parts from the same answer.
    document.dispatchEvent(new CustomEvent("alertbridge:dashboard", { detail: { data: body, params, headers } }));
    setStatus("Updated " + new Date(body.generatedAt).toLocaleTimeString() + (ns ? " · namespace " + ns : " · all namespaces you may list"), false);
  } catch (e) {
    setStatus("Cannot reach the operator: " + e.message, true);
  } finally {
    clearTimeout(timer);
    timer = setTimeout(refresh, REFRESH_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("settings");
  form.namespace.value = store.getItem("namespace") || "";
  form.window.value = store.getItem("window") || "240";
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    store.setItem("namespace", form.namespace.value.trim());
    store.setItem("window", form.window.value);
    if (form.token.value.trim()) store.setItem("token", form.token.value.trim());
    form.token.value = "";
    refresh();
  });
  document.getElementById("forget").addEventListener("click", () => { store.removeItem("token"); refresh(); });
  refresh();
});
