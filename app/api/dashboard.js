"use strict";
// The dashboard (served as /dashboard.js; no build step, no framework). Every value from the
// API is put in the page as text (textContent), never as HTML, so a hostile label or reason
// cannot run script. The page's Content-Security-Policy forbids inline script, inline style
// and style attributes: this file sets text, classes, `hidden` and plain attributes only.
//
// Updates happen in place. A view (the jobs list, or one job's page) is built once when the
// route (location.hash) changes; every refresh then patches it: table rows are keyed (job id,
// dead-letter id, counter name, log entry), a row whose item is gone is removed, a new one is
// inserted where it belongs, and a text is written only when it changed. So a button under
// the pointer, a text selection, focus and scroll positions survive a refresh, and a click
// that lands while one is applied still reaches its button.

const REFRESH_MS = 2000;
const view = document.getElementById("view");
const errorLine = document.getElementById("error");
const refreshed = document.getElementById("refreshed");
const tokenForm = document.getElementById("token-form");

function token() { return sessionStorage.getItem("aw-token") || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({"Accept": "application/json"}, options.headers || {});
  if (token()) headers["Authorization"] = "Bearer " + token();
  const response = await fetch(path, Object.assign({}, options, {headers}));
  if (response.status === 401) {
    tokenForm.hidden = false;
    throw new Error("the API needs a token");
  }
  const body = await response.json();
  if (!response.ok) {
    const problems = (body.problems || []).map(p => p.field + ": " + p.rule).join("; ");
    throw new Error(body.error + (problems ? " (" + problems + ")" : ""));
  }
  return body;
}

// -- building and patching -----------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child == null ? "" : String(child)));
  }
  return node;
}

function setText(node, value) {
  const text = value == null ? "" : String(value);
  if (node.textContent !== text) node.textContent = text;
}

function setAttr(node, name, value) {
  if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

function setClass(node, value) {
  if (node.className !== value) node.className = value;
}

function show(node, visible) {
  if (node.hidden === visible) node.hidden = !visible;
}

function stateSpan() { return el("span", {"data-testid": "state"}); }

function setState(span, state) {
  setClass(span, "state state-" + state);
  setText(span, state);
}

function table(testid, headers) {
  const body = el("tbody");
  const node = el("table", {"data-testid": testid},
    el("thead", {}, el("tr", {}, ...headers.map(h => el("th", {}, h)))), body);
  return {node, body};
}

// Make `tbody`'s rows match `keyed` ([key, item] pairs, keys unique, in display order): rows
// whose key is gone are removed, a missing one is made by create(key) and inserted at its
// place, and every row is patched by update(row, item). A row that stays is never re-created
// (and moved only when the order changed).
function syncRows(tbody, keyed, create, update) {
  const rows = new Map();
  for (const row of Array.from(tbody.rows)) rows.set(row.dataset.key, row);
  const wanted = new Set(keyed.map(([key]) => key));
  for (const [key, row] of rows) if (!wanted.has(key)) row.remove();
  keyed.forEach(([key, item], index) => {
    let row = rows.get(key);
    if (!row) {
      row = create(key);
      row.dataset.key = key;
    }
    update(row, item);
    const at = tbody.rows[index] || null;
    if (at !== row) tbody.insertBefore(row, at);
  });
}

// Keys for items that have no id (log entries): their content, numbered when repeated.
function contentKeys(items, contentOf) {
  const seen = new Map();
  return items.map(item => {
    const content = contentOf(item);
    const n = (seen.get(content) || 0) + 1;
    seen.set(content, n);
    return [content + "\u0000" + n, item];
  });
}

// -- actions -------------------------------------------------------------------------------

let actionError = "";  // the last failed action's message, shown until the next action

async function act(path, body) {
  actionError = "";
  try {
    await api(path, {method: "POST", body: body ? JSON.stringify(body) : undefined,
                     headers: body ? {"Content-Type": "application/json"} : {}});
  } catch (error) {
    actionError = error.message;
    setText(errorLine, actionError);
    return;
  }
  await render();
}

// -- the jobs list -------------------------------------------------------------------------

function jobsPage() {
  const jobs = table("jobs", ["id", "label", "type", "state", "since", "delivered", "omitted",
                              "failed requests", "backlog", "last error"]);
  const none = el("p", {"class": "muted", "hidden": ""},
    "No jobs yet: apply one with `webhooks jobs apply` or PUT /v1/jobs/{id}.");
  view.replaceChildren(el("h2", {}, "Jobs"), jobs.node, none);
  return function update(data) {
    show(jobs.node, data.jobs.length > 0);
    show(none, data.jobs.length === 0);
    syncRows(jobs.body, data.jobs.map(job => [job.id, job]), newJobRow, updateJobRow);
  };
}

function newJobRow(id) {
  return el("tr", {"data-testid": "job-row", "data-job": id},
    el("td", {}, el("a", {"href": "#/jobs/" + encodeURIComponent(id)}, id)),
    el("td"), el("td"), el("td", {}, stateSpan()), el("td"),
    el("td", {"data-testid": "delivered"}), el("td", {"data-testid": "omitted"}), el("td"),
    el("td", {"data-testid": "backlog"}), el("td"));
}

function updateJobRow(row, job) {
  const cells = row.cells;
  setText(cells[1], job.label);
  setText(cells[2], job.type);
  setState(cells[3].firstElementChild, job.state);
  setText(cells[4], job.since || "");
  setText(cells[5], job.counters.delivered_events);
  setText(cells[6], job.counters.omitted_events);
  setText(cells[7], job.counters.failed_requests);
  setText(cells[8], job.backlog);
  setText(cells[9], job.last_error ? job.last_error.reason : "");
}

// -- one job -------------------------------------------------------------------------------

function jobPage(id) {
  const base = "/v1/jobs/" + encodeURIComponent(id);
  const label = el("span", {"data-testid": "job-label"});
  const state = stateSpan(), since = el("span"), wanted = el("span");
  const backlog = el("span", {"data-testid": "backlog"});
  // one button for both: it only changes its text and test id, never its element
  const toggle = el("button", {"data-testid": "stop"}, "Stop");
  toggle.addEventListener("click",
    () => act(base + (toggle.dataset.testid === "stop" ? "/stop" : "/resume")));
  const statusLine = el("p", {}, "State ", state, " since ", since, " · wanted ", wanted,
                        " · backlog ", backlog, " ", toggle);
  const lastErrorReason = el("span");
  const lastError = el("p", {"data-testid": "last-error"}, "Last error: ", lastErrorReason);
  const counters = table("counters", ["counter", "value"]);
  const config = el("pre", {"data-testid": "config"});
  const letters = table("dead-letters", ["id", "time", "status", "reason", ""]);
  const noLetters = el("p", {"class": "muted", "hidden": ""}, "None.");
  const log = table("log", ["time", "worker", "kind", "message"]);
  view.replaceChildren(
    el("h2", {}, label, " ", el("span", {"class": "muted"}, id)),
    statusLine,
    el("div", {"class": "grid"},
      el("section", {}, el("h3", {}, "Counters"), counters.node),
      el("section", {}, el("h3", {}, "Configuration (secrets redacted)"), config)),
    el("section", {}, el("h3", {}, "Recent dead letters"), letters.node, noLetters),
    el("section", {}, el("h3", {}, "Log"), log.node));

  const replay = letterId => () => act(base + "/deadletters/replay", {ids: [letterId]});

  function newLetterRow(key) {
    return el("tr", {"data-testid": "dead-letter", "data-id": key},
      el("td", {}, key), el("td"), el("td"), el("td"), el("td"));
  }

  function updateLetterRow(row, letter) {
    const cells = row.cells;
    setText(cells[1], letter.time || "");
    setText(cells[2], letter.status);
    setText(cells[3], letter.reason);
    const current = cells[4].firstElementChild;
    const hasButton = current !== null && current.tagName === "BUTTON";
    if (letter.replayable && !hasButton) {
      const button = el("button", {"data-testid": "replay"}, "Replay");
      button.addEventListener("click", replay(letter.id));
      cells[4].replaceChildren(button);
    } else if (!letter.replayable && (hasButton || current === null)) {
      const why = letter.refusal ? "never replayed: user erased" : "not replayable";
      cells[4].replaceChildren(el("span", {"class": "muted"}, why));
    }
  }

  function newLogRow() { return el("tr", {}, el("td"), el("td"), el("td"), el("td")); }

  function updateLogRow(row, entry) {
    const cells = row.cells;
    setText(cells[0], entry.time);
    setText(cells[1], entry.worker_id);
    setText(cells[2], entry.kind);
    setText(cells[3], entry.message);
  }

  return function update({job, logs, letters: found}) {
    setText(label, job.config.label);
    setState(state, job.state);
    setText(since, job.since || "?");
    setText(wanted, job.wanted);
    setText(backlog, job.backlog);
    const running = job.wanted !== "stopped";
    setAttr(toggle, "data-testid", running ? "stop" : "resume");
    setText(toggle, running ? "Stop" : "Resume");
    if (job.last_error) {
      setText(lastErrorReason, job.last_error.reason);
      if (!lastError.isConnected) statusLine.after(lastError);
    } else if (lastError.isConnected) {
      lastError.remove();
    }
    syncRows(counters.body, Object.entries(job.counters),
      key => el("tr", {}, el("td", {}, key), el("td", {"data-testid": "counter-" + key})),
      (row, value) => setText(row.cells[1], value));
    setText(config, JSON.stringify(job.config, null, 2));
    const deadLetters = found.dead_letters.slice().reverse();
    show(letters.node, deadLetters.length > 0);
    show(noLetters, deadLetters.length === 0);
    syncRows(letters.body, deadLetters.map(d => [d.id, d]), newLetterRow, updateLetterRow);
    const entries = logs.entries.slice().reverse();
    syncRows(log.body,
      contentKeys(entries, e => [e.ts, e.time, e.worker_id, e.kind, e.message].join("\u0000")),
      newLogRow, updateLogRow);
  };
}

// -- routing and refreshing ----------------------------------------------------------------

function route() {
  const match = location.hash.match(/^#\/jobs\/(.+)$/);
  if (!match) return {key: "jobs", id: null};
  let id = match[1];
  try { id = decodeURIComponent(id); } catch (_) { /* shown as typed */ }
  return {key: "job:" + id, id};
}

async function load(where) {
  if (where.id === null) return api("/v1/jobs");
  const base = "/v1/jobs/" + encodeURIComponent(where.id);
  const [job, logs, letters] = await Promise.all([
    api(base), api(base + "/logs?limit=50"), api(base + "/deadletters?limit=20")]);
  return {job, logs, letters};
}

let page = null;  // {key, update}: the view on screen
let renders = 0;

async function renderOnce() {
  const where = route();
  try {
    const data = await load(where);
    if (route().key !== where.key) return;  // the hash changed meanwhile: render runs again
    if (page === null || page.key !== where.key) {
      page = {key: where.key, update: where.id === null ? jobsPage() : jobPage(where.id)};
    }
    page.update(data);
    setText(errorLine, actionError);
    renders += 1;
    refreshed.dataset.renders = String(renders);  // the refresh marker tests wait on
    setText(refreshed, "updated " + new Date().toLocaleTimeString());
  } catch (error) {
    if (route().key !== where.key) return;
    if (page !== null && page.key !== where.key) {  // never leave another route's view up
      view.replaceChildren();
      page = null;
    }
    setText(errorLine, error.message);
  }
}

// One render at a time: asked for while one runs, another follows it (and the answer of a
// render never overtakes a later one's); the next periodic refresh is due REFRESH_MS after
// the last render ended.
let rendering = null, again = false, timer = null;

function render() {
  if (rendering !== null) {
    again = true;
    return rendering;
  }
  clearTimeout(timer);
  rendering = (async () => {
    try {
      do {
        again = false;
        await renderOnce();
      } while (again);
    } finally {
      rendering = null;
      timer = setTimeout(render, REFRESH_MS);
    }
  })();
  return rendering;
}

tokenForm.addEventListener("submit", event => {
  event.preventDefault();
  sessionStorage.setItem("aw-token", document.getElementById("token").value);
  tokenForm.hidden = true;
  render();
});
window.addEventListener("hashchange", () => {
  actionError = "";
  render();
});
render();
