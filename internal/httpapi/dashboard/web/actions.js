// alertbridge dashboard, actions: after each dashboard refresh, asks
// /v1/permissions which actions the token's user may take in the
// namespaces shown (SubjectAccessReviews made by the server) and adds only
// those buttons: ack (with a note) and convert on Alerts; note, resolve and
// close on Incidents; set and clear the emergency bypass on gates. Each
// action is a POST to the same endpoints agents and the CLI's rules use;
// a refusal is shown in the API server's words.
"use strict";

(() => {
  const PERMS_TTL_MS = 20000;
  // PERMS_BATCH is the most namespaces one GET /v1/permissions may name
  // (the server's MaxReviewedNamespaces).
  const PERMS_BATCH = 20;
  let perms = { key: "", at: 0, namespaces: {} };
  let dialog = null;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return e;
  }

  function token() { return window.sessionStorage.getItem("token"); }

  async function call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
    let data = {};
    try { data = await resp.json(); } catch (e) { data = {}; }
    if (!resp.ok) {
      let msg = data.message || resp.statusText;
      // Field errors the message does not already say, one a line.
      const more = (Array.isArray(data.errors) ? data.errors : []).map((f) => f.field + ": " + (f.detail || f.type)).filter((m) => !msg.includes(m));
      if (more.length) msg += "\n" + more.map((m) => "· " + m).join("\n");
      const err = new Error(msg);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  async function permissions(nss) {
    const key = token() + "|" + nss.join(",");
    if (perms.key.split("|")[0] !== String(token())) document.getElementById("action-result")?.remove(); // another user
    if (!token() || nss.length === 0) return {};
    if (perms.key === key && Date.now() - perms.at < PERMS_TTL_MS) return perms.namespaces;
    // The server reviews at most PERMS_BATCH namespaces per call (it
    // refuses more), so the page asks in batches of that size.
    const namespaces = {};
    for (let i = 0; i < nss.length; i += PERMS_BATCH) {
      const q = new URLSearchParams();
      for (const ns of nss.slice(i, i + PERMS_BATCH)) q.append("namespace", ns);
      try {
        const p = await call("GET", "/v1/permissions?" + q);
        Object.assign(namespaces, p.namespaces || {});
      } catch (e) {
        // No buttons where it cannot be asked.
      }
    }
    perms = { key, at: Date.now(), namespaces };
    return perms.namespaces;
  }

  // done says what the last action did, beside the refresh status (which
  // each refresh rewrites).
  function done(text) {
    let r = document.getElementById("action-result");
    if (!r) {
      r = el("p", { id: "action-result", class: "status done", role: "status" });
      document.getElementById("status").after(r);
    }
    r.textContent = text;
  }

  // open shows the action dialog: fields are [name, label, element]; submit
  // gets the form's values and returns the success message.
  function open(title, fields, submitText, submit) {
    if (!dialog) {
      dialog = el("dialog", { class: "action", id: "action-dialog" });
      document.body.append(dialog);
    }
    const err = el("p", { class: "error", id: "action-error", role: "alert" });
    const form = el("form", { method: "dialog" });
    for (const [name, label, input] of fields) {
      input.name = name;
      input.id = "action-" + name;
      form.append(el("label", {}, label, input));
    }
    const cancel = el("button", { type: "button", id: "action-cancel" }, "Cancel");
    cancel.addEventListener("click", () => dialog.close());
    const ok = el("button", { type: "submit", id: "action-submit" }, submitText);
    form.append(err, el("div", { class: "buttons" }, cancel, ok));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      ok.disabled = true;
      const values = {};
      for (const [name] of fields) values[name] = form.elements[name].value;
      try {
        const msg = await submit(values);
        dialog.close();
        done(msg);
        if (typeof refresh === "function") refresh();
      } catch (e) {
        err.textContent = (e.status ? "Error " + e.status + ": " : "") + e.message;
      } finally {
        ok.disabled = false;
      }
    });
    dialog.replaceChildren(el("h3", {}, title), form);
    dialog.showModal();
    const first = form.querySelector("textarea, input, select");
    if (first) first.focus();
  }

  const textarea = (placeholder) => el("textarea", { rows: "3", maxlength: "1024", placeholder });
  const path = (kind, ns, name, action) => "/v1/" + kind + "/" + encodeURIComponent(ns) + "/" + encodeURIComponent(name) + "/" + action;

  function button(text, cls, action, onClick) {
    const b = el("button", { type: "button", class: cls, "data-action": action }, text);
    b.addEventListener("click", onClick);
    return b;
  }

  function alertButtons(tr, p) {
    const { ns, name, phase } = tr.dataset;
    const out = [];
    if (p.ack && (phase === "New" || phase === "Failed" || phase === "Processing")) {
      out.push(button("Ack", "", "ack", () => open("Ack " + ns + "/" + name, [["note", "Note (why: false positive, resolved at source…)", textarea("note")]], "Ack",
        async (v) => { await call("POST", path("alerts", ns, name, "ack"), { note: v.note }); return "Acked " + ns + "/" + name + "."; })));
    }
    if (p.convert && phase !== "Deduplicated") {
      out.push(button("To incident", "primary", "to-incident", () => open("Convert " + ns + "/" + name + " into an incident",
        [["severityCap", "Severity cap", el("select", {}, el("option", { value: "" }, "policy default"), ...["P0", "P1", "P2", "P3", "P4"].map((s) => el("option", { value: s }, s)))]], "Convert",
        async (v) => {
          const r = await call("POST", path("alerts", ns, name, "to-incident"), v.severityCap ? { severityCap: v.severityCap } : {});
          return (r.created ? "Opened incident " : "Linked to incident ") + r.incident.incidentRef + ".";
        })));
    }
    return out;
  }

  function incidentButtons(tr, p) {
    const { ns, name, state } = tr.dataset;
    const out = [];
    if (p.note) {
      out.push(button("Note", "", "note", () => open("Note on incident " + ns + "/" + name, [["note", "Note", textarea("what you found or did")]], "Add note",
        async (v) => { await call("POST", path("incidents", ns, name, "note"), { note: v.note }); return "Noted incident " + ns + "/" + name + "."; })));
    }
    if (p.state && state !== "Resolved") {
      out.push(button("Resolve", "primary", "resolve", () => open("Resolve incident " + ns + "/" + name, [["note", "Note (optional)", textarea("how it was fixed")]], "Resolve",
        async (v) => { await call("POST", path("incidents", ns, name, "state"), { state: "Resolved", note: v.note }); return "Resolved incident " + ns + "/" + name + "."; })));
    }
    if (p.state) {
      out.push(button("Close", "danger", "close", () => open("Close incident " + ns + "/" + name + " (final)", [["note", "Why it is closed (required)", textarea("required")]], "Close",
        async (v) => { await call("POST", path("incidents", ns, name, "close"), { note: v.note }); return "Closed incident " + ns + "/" + name + "."; })));
    }
    return out;
  }

  function gateButtons(tr, p) {
    const { ns, name, reason } = tr.dataset;
    if (!p.bypass) return [];
    const out = [button("Bypass", "danger", "bypass", () => open("Bypass the release gate " + ns + "/" + name,
      [["reason", "Reason (recorded with your name)", textarea("why the gate must open")],
        ["for", "For", el("select", {}, ...["30m", "1h", "2h", "4h", "8h", "24h"].map((d) => el("option", { value: d }, d)))]], "Bypass",
      async (v) => (await call("POST", path("slopolicies", ns, name, "bypass"), { reason: v.reason, for: v.for })).message))];
    if (reason === "Bypassed") {
      out.push(button("Clear bypass", "", "clear-bypass", () => open("Clear the bypass of " + ns + "/" + name, [], "Clear",
        async () => (await call("POST", path("slopolicies", ns, name, "bypass"), { clear: true })).message)));
    }
    return out;
  }

  // decorate adds an Actions column to table (header once) and the buttons
  // each row's namespace allows.
  function decorate(table, rowButtons, p) {
    if (!table) return;
    const head = table.querySelector("thead tr");
    const any = Object.values(p).some((a) => a.ack || a.convert || a.note || a.state || a.bypass);
    let th = head && head.querySelector("th.actions");
    if (any && head && !th) head.append(el("th", { class: "actions" }, "Actions"));
    if (!any && th) th.remove();
    for (const tr of table.querySelectorAll("tbody tr[data-ns]")) {
      if (tr.querySelector("td.actions")) continue; // decorated by an earlier refresh's answer
      const buttons = rowButtons(tr, p[tr.dataset.ns] || {});
      if (any) tr.append(el("td", { class: "actions" }, ...buttons));
    }
  }

  document.addEventListener("alertbridge:dashboard", async (ev) => {
    const d = ev.detail.data;
    const nss = new Set();
    for (const a of d.latest) nss.add(a.namespace);
    for (const i of d.openIncidents) nss.add(i.namespace);
    for (const g of d.gates) nss.add(g.namespace);
    const p = await permissions([...nss].sort());
    decorate(document.getElementById("latest"), alertButtons, p);
    for (const t of document.querySelectorAll("#incidents table")) decorate(t, incidentButtons, p);
    decorate(document.getElementById("gates"), gateButtons, p);
    document.body.dataset.actions = String(document.querySelectorAll("td.actions button").length);
    document.body.dataset.permissionsFor = Object.keys(p).sort().join(",");
  });
})();
