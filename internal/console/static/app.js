// Settle console: three pages (overview, list, transaction) over the
// AdminService HTTP routes. Plain JavaScript, no dependencies.
//
// Every string from the server is put in the page with textContent (el()
// below), never as HTML. The bearer token lives in sessionStorage and is
// sent only in the Authorization header.
"use strict";

const TOKEN_KEY = "settle.console.token";
const view = document.getElementById("view");
let timer = null; // the current page's refresh timer
let generation = 0; // bumped on every navigation; stale answers are dropped

// ---- helpers ----------------------------------------------------------

// el builds an element: attrs are properties (className, href, ...) or
// "data-*" attributes; children are nodes or strings (as text).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("data-") || k === "for") e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

// ApiError is a refused call: the HTTP status and the server's code and
// message ({"code": ..., "message": ...}).
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (token()) headers["Authorization"] = "Bearer " + token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "UNAVAILABLE", "the coordinator did not answer: " + e.message);
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    throw new ApiError(resp.status, (data && data.code) || "HTTP " + resp.status,
      (data && data.message) || resp.statusText);
  }
  return data || {};
}

// Errors: a load error is replaced by the next successful load; an
// action's error stays until the next action or page.
let errorSource = "";
function showError(err, source) {
  const box = document.getElementById("error");
  let text = err instanceof ApiError ? `${err.status} ${err.code}: ${err.message}` : String(err);
  if (err.status === 401) text += "\nEnter a bearer token above (a token of the operator or viewer role).";
  if (err.status === 403) text += "\nYour token's role may not do this; retry now and resolve need the operator role.";
  box.textContent = text;
  box.hidden = false;
  errorSource = source;
}
function clearError(source) {
  if (source && errorSource !== source) return;
  const box = document.getElementById("error");
  box.hidden = true;
  box.textContent = "";
  errorSource = "";
}
function notice(text) {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.hidden = !text;
}

const short = (s, prefix) => (s || "").replace(prefix, "");
const txState = (s) => short(s, "TRANSACTION_STATE_") || "UNSPECIFIED";
const branchState = (s) => short(s, "BRANCH_STATE_") || "UNSPECIFIED";
const isFinal = (s) => s === "COMMITTED" || s === "ABORTED";
const num = (v) => Number(v || 0);
const seconds = (d) => parseFloat(d || "0"); // protojson durations: "1.5s"

function human(secs) {
  secs = Math.max(0, secs);
  if (secs < 60) return secs < 10 ? secs.toFixed(1) + "s" : Math.floor(secs) + "s";
  const m = Math.floor(secs / 60), s = Math.floor(secs % 60);
  if (m < 60) return `${m}m ${s}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function age(ts) { return ts ? human((Date.now() - Date.parse(ts)) / 1000) : ""; }

// relative formats a time as an offset from the timeline's origin.
function relative(ts, origin) {
  const ms = Date.parse(ts) - origin;
  const sign = ms < 0 ? "-" : "+";
  const abs = Math.abs(ms) / 1000;
  if (abs < 60) return sign + abs.toFixed(3) + "s";
  return sign + Math.floor(abs / 60) + "m " + (abs % 60).toFixed(3).padStart(6, "0") + "s";
}

function stateBadge(s) { return el("span", { className: "state " + s }, s); }

function card(label, value, id, extra) {
  return el("div", { className: "card " + (extra || ""), id },
    el("div", { className: "label" }, label), el("div", { className: "value" }, value));
}

function setNav(name) {
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.id === "nav-" + name);
}

// ---- overview -----------------------------------------------------------

async function overviewPage(gen) {
  setNav("overview");
  const o = await api("GET", "/v1/admin/overview");
  if (gen !== generation) return;
  clearError("load");
  view.dataset.loaded = "yes";
  const counts = {};
  for (const s of o.states || []) counts[txState(s.state)] = num(s.count);
  const cards = ["TRYING", "COMMITTING", "ABORTING", "COMMITTED", "ABORTED"].map((s) =>
    card(s.toLowerCase(), counts[s] || 0, "ov-count-" + s));
  const attention = el("a", { href: "#/list?needs_attention=true", id: "ov-attention-link" },
    card("needs attention", num(o.needsAttention), "ov-attention", num(o.needsAttention) > 0 ? "attention" : ""));
  view.replaceChildren(
    el("h1", {}, "Overview"),
    el("div", { className: "cards" }, cards),
    el("h2", {}, "Look at"),
    el("div", { className: "cards" }, attention,
      card("oldest undecided (TRYING)", o.oldestUndecidedAge ? human(seconds(o.oldestUndecidedAge)) : "none", "ov-oldest-undecided"),
      card("oldest unfinished", o.oldestUnfinishedAge ? human(seconds(o.oldestUnfinishedAge)) : "none", "ov-oldest-unfinished")),
    el("h2", {}, "Last hour, per minute"),
    chart(o),
    el("p", { className: "refresh" }, "As of " + new Date(o.time).toLocaleTimeString() + "; refreshes every 5 s."));
  timer = setTimeout(() => run(overviewPage, gen), 5000);
}

// chart draws decisions and failed calls per bucket as paired bars.
function chart(o) {
  const dec = (o.decisions || []).map(num), fail = (o.failedCalls || []).map(num);
  const n = Math.max(dec.length, fail.length, 1);
  const W = 760, H = 220, left = 40, right = 10, top = 10, bottom = 28;
  const top1 = Math.max(1, ...dec, ...fail);
  const slot = (W - left - right) / n, bar = Math.max(1, slot / 2 - 1);
  const y = (v) => top + (H - top - bottom) * (1 - v / top1);
  const start = Date.parse(o.seriesStart), step = seconds(o.bucket) * 1000;
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", id: "ov-chart",
    "aria-label": `decisions and failed calls per minute; at most ${top1} in a minute` });
  for (const v of [0, top1 / 2, top1]) {
    g.append(svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), stroke: "#d8dce4" }));
    g.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#5d6677" },
      Number.isInteger(v) ? v : v.toFixed(1)));
  }
  for (let i = 0; i < n; i++) {
    const x = left + i * slot;
    const label = new Date(start + i * step).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    for (const [j, v, color, what] of [[0, dec[i] || 0, "#2457c5", "decisions"], [1, fail[i] || 0, "#b3261e", "failed calls"]]) {
      if (!v) continue;
      g.append(svg("rect", { x: x + j * (bar + 1), y: y(v), width: bar, height: y(0) - y(v), fill: color },
        svg("title", {}, `${label}: ${v} ${what}`)));
    }
  }
  const ticks = [[0, "-60 min"], [Math.floor(n / 2), "-30 min"], [n - 1, "now"]];
  for (const [i, t] of ticks) {
    g.append(svg("text", { x: left + i * slot + slot / 2, y: H - 8, "text-anchor": "middle", "font-size": 11, fill: "#5d6677" }, t));
  }
  const legend = el("div", { className: "legend" },
    el("span", {}, el("span", { className: "swatch dec" }), `decisions (${dec.reduce((a, b) => a + b, 0)} in the hour)`),
    el("span", {}, el("span", { className: "swatch fail" }), `failed Confirm/Cancel calls (${fail.reduce((a, b) => a + b, 0)})`));
  return el("div", { className: "chart" }, g, legend);
}

// ---- list -----------------------------------------------------------------

const FILTERS = ["state", "needs_attention", "min_age_seconds", "max_age_seconds", "gid_prefix", "participant", "label", "page_size"];
let pages = { key: "", tokens: [""] }; // page tokens of the pages seen, for the current filters

async function listPage(gen, params) {
  setNav("list");
  const key = params.toString();
  if (pages.key !== key) pages = { key, tokens: [""] };
  const q = new URLSearchParams();
  for (const f of FILTERS) if (params.get(f)) q.set(f, params.get(f));
  const pageToken = pages.tokens[pages.tokens.length - 1];
  if (pageToken) q.set("page_token", pageToken);
  if (!q.get("page_size")) q.set("page_size", "50");
  const form = filterForm(params);
  let resp;
  try {
    resp = await api("GET", "/v1/admin/transactions?" + q.toString());
  } catch (e) {
    if (gen === generation) {
      view.replaceChildren(el("h1", {}, "Transactions"), form);
      view.dataset.loaded = "yes"; // the form stays, to fix a filter
    }
    throw e;
  }
  if (gen !== generation) return;
  clearError("load");
  view.dataset.loaded = "yes";
  const rows = (resp.transactions || []).map((t) => {
    const s = txState(t.state);
    return el("tr", { "data-gid": t.gid },
      el("td", { className: "mono" }, el("a", { href: "#/tx/" + encodeURIComponent(t.gid) }, t.gid)),
      el("td", {}, stateBadge(s)),
      el("td", { className: "num" }, age(t.createTime)),
      el("td", { className: "num" }, num(t.branchCount)),
      el("td", { className: "num" }, num(t.attempts)),
      el("td", {}, t.needsAttention ? el("span", { className: "flag" }, "needs attention") : ""),
      el("td", { className: "mono" }, t.lastError || ""));
  });
  const table = el("table", { id: "tx-list" },
    el("thead", {}, el("tr", {}, ["gid", "state", "age", "branches", "attempts", "attention", "last error"].map((h, i) =>
      el("th", { className: i >= 2 && i <= 4 ? "num" : "" }, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colSpan: 7, className: "muted" }, "No transactions match."))));
  const pager = el("div", { className: "pager" },
    el("button", { type: "button", id: "first-page", disabled: pages.tokens.length === 1,
      onclick: () => { pages.tokens = [""]; route(); } }, "First page"),
    el("span", {}, `page ${pages.tokens.length}, ${rows.length} shown`),
    el("button", { type: "button", id: "next-page", disabled: !resp.nextPageToken,
      onclick: () => { pages.tokens.push(resp.nextPageToken); route(); } }, "Next page"));
  view.replaceChildren(el("h1", {}, "Transactions"), form, table, pager);
}

function filterForm(params) {
  const input = (name, label, attrs) => el("label", {}, label,
    el("input", Object.assign({ name, value: params.get(name) || "" }, attrs || {})));
  const state = el("select", { name: "state" },
    ["", "TRYING", "COMMITTING", "ABORTING", "COMMITTED", "ABORTED"].map((s) =>
      el("option", { value: s ? "TRANSACTION_STATE_" + s : "", selected: params.get("state") === "TRANSACTION_STATE_" + s }, s || "any")));
  const form = el("form", { className: "filters", id: "filters" },
    el("label", {}, "state", state),
    el("label", { className: "check" }, el("input", { type: "checkbox", name: "needs_attention", id: "f-attention",
      checked: params.get("needs_attention") === "true" }), "needs attention"),
    input("min_age_seconds", "min age (s)", { type: "number", min: 0, size: 8 }),
    input("max_age_seconds", "max age (s)", { type: "number", min: 0, size: 8 }),
    input("gid_prefix", "gid prefix"),
    input("participant", "participant (host:port)"),
    input("label", "label (key or key=value)"),
    input("page_size", "page size", { type: "number", min: 1, max: 1000, size: 5 }),
    el("button", { type: "submit", className: "primary", id: "apply-filters" }, "Apply"),
    el("button", { type: "button", onclick: () => { location.hash = "#/list"; } }, "Clear"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const f of FILTERS) {
      const field = form.elements[f];
      if (field.type === "checkbox") { if (field.checked) q.set(f, "true"); } else if (field.value) q.set(f, field.value);
    }
    location.hash = "#/list" + (q.toString() ? "?" + q.toString() : "");
  });
  return form;
}

// ---- transaction ----------------------------------------------------------

async function txPage(gen, gid) {
  setNav("");
  const enc = encodeURIComponent(gid);
  const [detail, hist] = await Promise.all([
    api("GET", "/v1/admin/transactions/" + enc),
    api("GET", "/v1/admin/transactions/" + enc + "/history").catch((e) => { if (e.status === 404) return {}; throw e; }),
  ]);
  if (gen !== generation) return;
  clearError("load");
  view.dataset.loaded = "yes";
  const tx = detail.transaction || {};
  const s = txState(tx.state);
  let page = document.getElementById("tx-page");
  if (!page || page.dataset.gid !== gid) {
    page = el("div", { id: "tx-page", "data-gid": gid },
      el("h1", {}, "Transaction ", el("span", { className: "mono" }, gid)),
      el("div", { id: "tx-actions" }), el("div", { id: "tx-body" }));
    view.replaceChildren(page);
    document.getElementById("tx-actions").append(actions(gid, tx));
  }
  syncBranchChoice(tx);
  document.getElementById("retry").disabled = isFinal(s);
  document.getElementById("resolve-start").disabled = isFinal(s);
  document.getElementById("tx-body").replaceChildren(
    record(tx, detail.leaseOwner),
    el("h2", {}, "Labels"), labels(tx.labels),
    el("h2", {}, "Branches"), branches(tx, detail.branchDetails || []),
    el("h2", {}, "Timeline"), timeline(hist),
    el("p", { className: "refresh", id: "tx-refresh" },
      isFinal(s) ? "Final: no longer refreshed." : "Refreshes every 1.5 s while not final."));
  if (!isFinal(s)) timer = setTimeout(() => run(txPage, gen, gid), 1500);
}

// syncBranchChoice keeps the resolve form's branches in step with the
// transaction's (a TRYING one may register more), keeping the choice.
function syncBranchChoice(tx) {
  const sel = document.getElementById("resolve-branch");
  const ids = (tx.branches || []).map((b) => b.branchId);
  if ([...sel.options].map((o) => o.value).join("\n") === ids.join("\n")) return;
  const current = sel.value;
  sel.replaceChildren(...ids.map((id) => el("option", { value: id, selected: id === current }, id)));
}

function record(tx, leaseOwner) {
  const s = txState(tx.state);
  const rows = [
    ["state", el("span", { id: "tx-state" }, stateBadge(s))],
    ["needs attention", tx.needsAttention ? el("span", { className: "flag", id: "tx-attention" }, "yes") : "no"],
    ["created", tx.createTime ? `${tx.createTime} (${age(tx.createTime)} ago)` : ""],
    ["timeout", tx.timeout || ""],
    ["deadline", tx.deadline || ""],
    ["updated", tx.updateTime || ""],
    ["next attempt", tx.nextAttemptTime || ""],
    ["delivery rounds", num(tx.attempts)],
    ["last error", el("span", { className: "mono" }, tx.lastError || "")],
    ["abort reason", tx.abortReason || ""],
    ["lease owner", leaseOwner || ""],
    ["decider", el("span", { className: "mono", id: "tx-decider" }, tx.decider || "none")],
  ];
  return el("dl", { className: "record" }, rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function labels(m) {
  const entries = Object.entries(m || {}).sort();
  if (!entries.length) return el("p", { className: "muted" }, "none");
  return el("table", { id: "tx-labels" }, el("tbody", {}, entries.map(([k, v]) =>
    el("tr", {}, el("td", { className: "mono" }, k), el("td", { className: "mono" }, v)))));
}

function payloadSize(b64) {
  if (!b64) return 0;
  const pad = b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0;
  return (b64.length / 4) * 3 - pad;
}

function branches(tx, details) {
  const byId = {};
  for (const d of details) byId[d.branchId] = d;
  const rows = (tx.branches || []).map((b) => {
    const d = byId[b.branchId] || {};
    return el("tr", { "data-branch": b.branchId },
      el("td", { className: "mono" }, b.branchId),
      el("td", { className: "mono" }, b.participant),
      el("td", {}, stateBadge(branchState(b.state)), d.conflict ? el("span", { className: "flag" }, " conflict") : ""),
      el("td", { className: "num" }, num(b.attempts)),
      el("td", { className: "mono" }, b.lastError || ""),
      el("td", { className: "num" }, payloadSize(b.payload) + " B"),
      el("td", { className: "mono", title: d.payloadDigest || "" }, (d.payloadDigest || "").slice(0, 16)),
      el("td", {}, d.resolution || ""));
  });
  return el("table", { id: "tx-branches" },
    el("thead", {}, el("tr", {}, ["branch", "participant", "state", "attempts", "last error", "payload", "sha-256", "resolution"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colSpan: 8, className: "muted" }, "No branches."))));
}

function eventDetail(e) {
  const kind = short(e.kind, "EVENT_KIND_");
  const parts = [];
  switch (kind) {
    case "BRANCH_REGISTERED": parts.push("participant " + (e.participant || "")); break;
    case "DECIDED":
      parts.push(txState(e.state) + " by " + short(e.cause, "DECISION_CAUSE_").toLowerCase().replace("_", "-"));
      if (e.message) parts.push(e.message);
      break;
    case "ATTEMPT":
      parts.push(`${e.call || "call"} #${e.attempt || "?"}: ${short(e.result, "ATTEMPT_RESULT_")}`);
      if (e.code) parts.push(e.code);
      if (e.latency) parts.push((seconds(e.latency) * 1000).toFixed(1) + " ms");
      if (e.message) parts.push(e.message);
      break;
    case "RESOLVED": parts.push("set to " + branchState(e.branchState), e.message || ""); break;
    case "FINISHED": parts.push(txState(e.state)); break;
    default: if (e.message) parts.push(e.message);
  }
  if (e.actor) parts.push("by " + e.actor);
  if (e.instance) parts.push("on " + e.instance);
  return parts.filter(Boolean).join(" · ");
}

function timeline(h) {
  const events = h.events || [];
  if (!events.length) return el("p", { className: "muted" }, "No history.");
  const origin = Date.parse(h.beginTime || events[0].time);
  const rows = events.map((e) => {
    const kind = short(e.kind, "EVENT_KIND_");
    const result = short(e.result, "ATTEMPT_RESULT_");
    return el("tr", { className: `ev-${kind} ${kind === "ATTEMPT" ? (result === "SUCCESS" ? "success" : "fail") : ""}`,
      "data-kind": kind, "data-result": result || null },
      el("td", { className: "num mono", title: e.time }, relative(e.time, origin)),
      el("td", {}, kind),
      el("td", { className: "mono" }, e.branchId || ""),
      el("td", {}, eventDetail(e)));
  });
  const dropped = (h.droppedAttempts || []).map((d) =>
    el("p", { className: "muted" }, `${num(d.count)} attempts of branch ${d.branchId} were dropped by the history's bound.`));
  return el("div", {}, el("table", { id: "timeline" },
    el("thead", {}, el("tr", {}, ["since begin", "event", "branch", "detail"].map((x) => el("th", {}, x)))),
    el("tbody", {}, rows)), dropped);
}

// actions are built once per visit (the refresh does not wipe a reason
// being typed); the server decides who may use them.
function actions(gid, tx) {
  const enc = encodeURIComponent(gid);
  const act = async (button, method, path, body, done) => {
    clearError("action");
    notice("");
    button.disabled = true;
    try {
      await api(method, path, body);
      notice(done);
      clearTimeout(timer);
      run(txPage, generation, gid);
    } catch (e) {
      showError(e, "action");
    } finally {
      button.disabled = false;
    }
  };
  const retry = el("button", { type: "button", id: "retry", className: "primary" }, "Retry now");
  retry.onclick = () => act(retry, "POST", `/v1/admin/transactions/${enc}:retry`, {}, "Retry requested: the coordinator delivers it now.");

  const branch = el("select", { name: "branch", id: "resolve-branch" },
    (tx.branches || []).map((b) => el("option", { value: b.branchId }, b.branchId)));
  const state = el("select", { name: "state", id: "resolve-state" },
    el("option", { value: "BRANCH_STATE_CONFIRMED" }, "CONFIRMED"), el("option", { value: "BRANCH_STATE_CANCELLED" }, "CANCELLED"));
  const reason = el("input", { name: "reason", id: "resolve-reason", placeholder: "reason (required): what was fixed, by whom", maxLength: 512 });
  const confirmBox = el("div", { className: "confirm", id: "resolve-confirm", hidden: true });
  const start = el("button", { type: "button", id: "resolve-start" }, "Resolve branch…");
  start.onclick = () => {
    clearError("action");
    if (!reason.value.trim()) {
      showError("A reason is required to resolve a branch by hand.", "action");
      reason.focus();
      return;
    }
    const yes = el("button", { type: "button", className: "danger", id: "resolve-yes" }, "Yes, resolve");
    const no = el("button", { type: "button", id: "resolve-no" }, "Cancel");
    const br = branch.value, st = state.value, why = reason.value.trim();
    yes.onclick = async () => {
      await act(yes, "POST", `/v1/admin/transactions/${enc}/branches/${encodeURIComponent(br)}:resolve`,
        { state: st, reason: why }, `Branch ${br} resolved as ${branchState(st)}.`);
      confirmBox.hidden = true;
    };
    no.onclick = () => { confirmBox.hidden = true; };
    confirmBox.replaceChildren(
      el("p", {}, `Record that branch ${br} is ${branchState(st)} at its participant, with the reason “${why}”? ` +
        "The coordinator stops calling it; this cannot be undone."), yes, " ", no);
    confirmBox.hidden = false;
  };
  return el("div", {},
    el("div", { className: "actions" }, retry, el("span", { className: "muted" }, "Actions need the operator role.")),
    el("div", { className: "resolve" }, el("strong", {}, "Resolve a branch by hand:"), branch, state, reason, start),
    confirmBox);
}

// ---- routing and auth -------------------------------------------------------

// run renders a page, showing its error if it fails.
async function run(page, gen, ...args) {
  if (gen !== generation) return;
  try {
    await page(gen, ...args);
  } catch (e) {
    if (gen !== generation) return;
    showError(e, "load");
    if (view.dataset.loaded !== "yes") view.replaceChildren(el("p", { className: "muted" }, "Nothing to show: see the error above."));
    if (page === txPage || page === overviewPage) timer = setTimeout(() => run(page, gen, ...args), 5000);
  }
}

function route() {
  clearTimeout(timer);
  generation++;
  view.dataset.loaded = "";
  clearError();
  notice("");
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  if (path.startsWith("/tx/")) {
    run(txPage, generation, decodeURIComponent(path.slice(4)));
  } else if (path === "/list") {
    run(listPage, generation, new URLSearchParams(query || ""));
  } else {
    run(overviewPage, generation);
  }
}

function showAuth() {
  document.getElementById("auth-state").textContent = token() ? "token set for this tab" : "no token";
  document.getElementById("token").value = "";
}

document.getElementById("auth").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = document.getElementById("token").value.trim();
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  showAuth();
  route();
});
document.getElementById("forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showAuth();
  route();
});
window.addEventListener("hashchange", route);
showAuth();
route();
