/* ovbench dashboard: plain JS, no build step, no dependency. Reads the JSON API like any
   client; live updates from the server-sent events (GET /events, GET /jobs/{id}/events),
   read with fetch() so a bearer token can go along; when they fail, conditional polls
   (If-None-Match) of GET /jobs and GET /jobs/{id}. */
"use strict";

const TOKEN_KEY = "ovbench.token";
const FINAL = ["succeeded", "failed", "cancelled"];
const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const COLORS = ["#2357c6", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285", "#5f3dc4"];
const POLL_JOB_MS = 700;
const POLL_LIST_MS = 2000;

const view = () => document.getElementById("view");
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) =>
  ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const num = (v, digits = 2) => (v === null || v === undefined || Number.isNaN(v) ? "–"
  : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 }));
const ms = (v) => (v === null || v === undefined ? "–" : v < 1 ? num(v, 4) : num(v, 2));
const short = (id) => esc(String(id || "").slice(0, 8));
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${num(n / 1024, 1)} KiB` : `${num(n / 1048576, 1)} MiB`);
const when = (t) => (t ? new Date(t).toLocaleString() : "–");

/* ---- API access ------------------------------------------------------------------------ */

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function authHeaders(extra) {
  const h = Object.assign({}, extra || {});
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function api(path, opts = {}) {
  const response = await fetch(path, Object.assign({}, opts, {
    headers: authHeaders(opts.headers), cache: "no-store",
  }));
  const type = response.headers.get("content-type") || "";
  const body = response.status === 304 ? null
    : type.includes("json") ? await response.json() : await response.text();
  if (response.status === 401) { signIn(body); throw new ApiError(401, body); }
  if (!response.ok && response.status !== 304) throw new ApiError(response.status, body);
  return { status: response.status, body, headers: response.headers };
}

const get = async (path) => (await api(path)).body;

/* ---- Live updates: SSE first, conditional polls as the fallback -------------------------- */

let stops = [];
function onLeave(stop) { stops.push(stop); }
function setLive(mode) {
  document.body.dataset.live = mode;
  const el = document.getElementById("live");
  if (el) el.textContent = mode ? `live: ${mode}` : "";
}

/* Read `ssePath` as an event stream; on failure (404 before it is deployed, a proxy that
   buffers or blocks it, a dropped connection) call `fallback()` once. `onOpen()`, if given,
   runs once the stream is open (to read again what may have changed before it was). */
function subscribe(ssePath, onEvent, fallback, onOpen) {
  const controller = new AbortController();
  let fellBack = false;
  let ended = false;
  const fall = () => { if (!fellBack && !ended && !controller.signal.aborted) { fellBack = true; fallback(); } };
  (async () => {
    try {
      const response = await fetch(ssePath, {
        headers: authHeaders({ Accept: "text/event-stream" }), cache: "no-store", signal: controller.signal,
      });
      const type = response.headers.get("content-type") || "";
      if (!response.ok || !type.includes("text/event-stream") || !response.body) { fall(); return; }
      setLive("events");
      if (onOpen) onOpen();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (!data.length) continue;
          let parsed;
          try { parsed = JSON.parse(data.join("\n")); } catch (e) { continue; }
          if (event === "end") ended = true;
          onEvent(event, parsed);
          if (ended) { controller.abort(); return; }
        }
      }
      fall();
    } catch (e) {
      fall();
    }
  })();
  return () => controller.abort();
}

/* GET `path` every `everyMs` with If-None-Match; `onBody` on each changed 200. It returns
   true to stop polling. */
function poll(path, everyMs, onBody) {
  let etag = null;
  let timer = null;
  let stopped = false;
  setLive("polling");
  const tick = async () => {
    if (stopped) return;
    try {
      const response = await fetch(path, {
        headers: authHeaders(etag ? { "If-None-Match": etag } : {}), cache: "no-store",
      });
      if (response.status === 401) { signIn(await response.json().catch(() => null)); return; }
      if (response.status === 200) {
        etag = response.headers.get("ETag");
        if (onBody(await response.json())) { stopped = true; return; }
      }
    } catch (e) { /* the next tick retries */ }
    if (!stopped) timer = setTimeout(tick, everyMs);
  };
  timer = setTimeout(tick, 0);
  return () => { stopped = true; clearTimeout(timer); };
}

/* ---- Sign-in (bearer tokens) ----------------------------------------------------------- */

function signIn(body) {
  stops.forEach((s) => s()); stops = [];
  const refused = token() !== null;
  const reason = body && body.error ? body.error.message : "";
  view().innerHTML = `<div class="card signin" id="signin">
    <h1>Sign in</h1>
    <p>${refused ? `<span class="notice error" id="signin-error">The token was refused: ${esc(reason)}</span>`
      : "This ovbench service needs a bearer token (one of its <code>OVBENCH_API_TOKENS</code>)."}</p>
    <form id="signin-form"><p><input type="password" id="token" autocomplete="off" placeholder="Token" required></p>
    <p><button type="submit">Sign in</button> <span class="muted">Kept for this tab only.</span></p></form></div>`;
  document.getElementById("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
    route();
  });
}

/* ---- Charts: small SVG, drawn here -------------------------------------------------------- */

function ticks(lo, hi, count = 5) {
  if (hi <= lo) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  const top = Math.ceil(hi / step - 1e-9) * step;  // the last tick at or above the highest value
  for (let v = Math.floor(lo / step) * step; v <= top + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

/* series: [{name, color, points: [[x, y], ...]}]; `lines` false: a scatter plot. */
function chart(series, { xLabel = "", yLabel = "", lines = true, width = 600, height = 240, id = "" } = {}) {
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) return `<p class="muted">No data to chart yet.</p>`;
  const m = { l: 62, r: 12, t: 10, b: 38 };
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const xt = ticks(Math.min(...xs), Math.max(...xs));
  const yt = ticks(Math.min(0, ...ys), Math.max(...ys));
  const [x0, x1, y0, y1] = [xt[0], xt[xt.length - 1], yt[0], yt[yt.length - 1]];
  const X = (v) => m.l + ((v - x0) / (x1 - x0 || 1)) * (width - m.l - m.r);
  const Y = (v) => height - m.b - ((v - y0) / (y1 - y0 || 1)) * (height - m.t - m.b);
  let svg = `<svg class="chart"${id ? ` id="${esc(id)}"` : ""} viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(yLabel)} by ${esc(xLabel)}">`;
  for (const v of yt) svg += `<line class="gridline" x1="${m.l}" x2="${width - m.r}" y1="${Y(v)}" y2="${Y(v)}"/><text x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end">${num(v, 3)}</text>`;
  for (const v of xt) svg += `<text x="${X(v)}" y="${height - m.b + 15}" text-anchor="middle">${num(v, 3)}</text>`;
  svg += `<line class="axis" x1="${m.l}" x2="${width - m.r}" y1="${height - m.b}" y2="${height - m.b}"/><line class="axis" x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${height - m.b}"/>`;
  svg += `<text x="${(m.l + width - m.r) / 2}" y="${height - 4}" text-anchor="middle">${esc(xLabel)}</text>`;
  svg += `<text transform="translate(12 ${(m.t + height - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`;
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    if (lines && s.points.length > 1) svg += `<polyline fill="none" stroke="${color}" stroke-width="2" points="${s.points.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ")}"/>`;
    for (const p of s.points) svg += `<circle class="point" cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="${lines ? 3 : 5}" fill="${color}"><title>${esc(s.name)}: ${esc(p[2] || "")} ${num(p[0], 3)}, ${num(p[1], 4)}</title></circle>`;
  });
  svg += "</svg>";
  const legend = series.length > 1 ? `<div class="legend">${series.map((s, i) => `<span><i style="background:${s.color || COLORS[i % COLORS.length]}"></i>${esc(s.name)}</span>`).join("")}</div>` : "";
  return svg + legend;
}

/* ---- Small renderers --------------------------------------------------------------------- */

const statusBadge = (s) => `<span class="status ${esc(s)}">${esc(s)}</span>`;
const verdictBadge = (v) => (v ? `<span class="verdict ${esc(v)}">${esc(v)}</span>` : "–");

function progressPercent(job) {
  if (job.status === "succeeded") return 100;
  return Math.max(0, Math.min(100, Math.round((job.progress ? job.progress.fraction : 0) * 100)));
}

function progressBar(job, big = false) {
  const pct = progressPercent(job);
  return `<div class="bar${big ? " big" : ""}" data-progress="${pct}"><span style="width:${pct}%"></span><em>${pct}%</em></div>`;
}

function table(headers, rows, attrs = "") {
  return `<table ${attrs}><thead><tr>${headers.map((h) => `<th${h.num ? ' class="num"' : ""}>${esc(h.label || h)}</th>`).join("")}</tr></thead><tbody>${rows.join("") || `<tr><td colspan="${headers.length}" class="muted">Nothing yet.</td></tr>`}</tbody></table>`;
}

function kv(obj) {
  if (!obj) return `<p class="muted">–</p>`;
  const rows = Object.entries(obj).filter(([, v]) => v === null || typeof v !== "object")
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td class="mono">${esc(v === null ? "null" : v)}</td></tr>`);
  const nested = Object.entries(obj).filter(([, v]) => v !== null && typeof v === "object");
  return `<table>${rows.join("")}</table>${nested.map(([k, v]) => `<details><summary>${esc(k)}</summary><pre>${esc(JSON.stringify(v, null, 2))}</pre></details>`).join("")}`;
}

function errorNotice(e) {
  return `<div class="notice error">${esc(e.message || e)}</div>`;
}

/* ---- Page actions (cancel, delete, rerun) ----------------------------------------------------- */

/* An action's failure as the API's message (the one error shape), never the raw body; a job
   that is a point of a sweep links to the sweep, which is what can be deleted. */
function actionErrorNotice(e) {
  const error = e.body && typeof e.body === "object" && e.body.error ? e.body.error : null;
  const sweepId = error && error.code === "job_in_sweep" && error.details ? error.details.sweep_id : null;
  return `<div class="notice error"${error ? ` data-code="${esc(error.code)}"` : ""}>${esc(e.message || e)}${sweepId ? ` <a href="#/sweep/${esc(sweepId)}">Open the sweep</a>` : ""}</div>`;
}

/* The buttons of a page's toolbar `bar`: `spec()` lists those the current state allows,
   [{id, label, kind, disabled, confirm, run}]. Call the returned `draw()` on each state change
   (the DOM changes only when the buttons do). A click asks `confirm` first (window.confirm),
   disables every button while `run()` works, and shows its error in `errorBox`. */
function toolbar(bar, errorBox, spec) {
  let busy = false;
  let actions = [];
  let shown = null;
  const draw = () => {
    if (!bar.isConnected) return;
    actions = spec();
    const html = actions.map((a) => `<button type="button" id="${esc(a.id)}" data-action="${esc(a.id)}" class="${esc(a.kind || "")}"${busy || a.disabled ? " disabled" : ""}>${esc(a.label)}</button>`).join("");
    if (html !== shown) { bar.innerHTML = html; shown = html; }
  };
  bar.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    const action = button && actions.find((a) => a.id === button.dataset.action);
    if (!action || busy || action.disabled) return;
    if (action.confirm && !window.confirm(action.confirm)) return;
    busy = true;
    errorBox.innerHTML = "";
    draw();
    try {
      await action.run();
    } catch (e) {
      if (e.status !== 401 && errorBox.isConnected) errorBox.innerHTML = actionErrorNotice(e);
    } finally {
      busy = false;
      draw();
    }
  });
  return draw;
}

let modelNames = {};
async function loadModelNames() {
  try {
    for (const m of await get("/models")) modelNames[m.id] = m.name;
  } catch (e) { if (e.status === 401) throw e; }
  return modelNames;
}
const modelName = (id) => esc(modelNames[id] || String(id).slice(0, 8));

/* ---- Jobs page --------------------------------------------------------------------------- */

async function pageJobs(params) {
  const status = params.get("status") || "";
  const modelId = params.get("model") || "";
  await loadModelNames();
  const modelOptions = Object.entries(modelNames).map(([id, name]) => `<option value="${esc(id)}"${id === modelId ? " selected" : ""}>${esc(name)} (${short(id)})</option>`).join("");
  view().innerHTML = `<h1>Jobs</h1>
    <div class="filters"><label>Status <select id="f-status"><option value="">any</option>${STATUSES.map((s) => `<option${s === status ? " selected" : ""}>${s}</option>`).join("")}</select></label>
    <label>Model <select id="f-model"><option value="">any</option>${modelOptions}</select></label>
    <button class="secondary" id="compare-selected" disabled>Compare selected</button>
    <span class="muted" id="jobs-count"></span></div><div id="jobs-table"></div>`;
  const refilter = () => {
    const q = new URLSearchParams();
    if (document.getElementById("f-status").value) q.set("status", document.getElementById("f-status").value);
    if (document.getElementById("f-model").value) q.set("model", document.getElementById("f-model").value);
    location.hash = `#/jobs${q.toString() ? `?${q}` : ""}`;
  };
  document.getElementById("f-status").addEventListener("change", refilter);
  document.getElementById("f-model").addEventListener("change", refilter);
  const selected = new Set();
  document.getElementById("compare-selected").addEventListener("click", () => {
    location.hash = `#/compare?ids=${[...selected].join(",")}`;
  });
  const query = new URLSearchParams({ limit: "50" });
  if (status) query.set("status", status);
  if (modelId) query.set("model_id", modelId);
  const jobs = new Map();
  const matches = (j) => (!status || j.status === status) && (!modelId || j.model_id === modelId);
  let pending = false;
  const draw = () => {
    pending = false;
    const list = [...jobs.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1)).slice(0, 50);
    const rows = list.map((j) => {
      const r = j.result;
      const live = j.status === "running" || j.status === "queued";
      return `<tr data-job="${esc(j.id)}" data-status="${esc(j.status)}">
        <td><input type="checkbox" class="pick" value="${esc(j.id)}"${selected.has(j.id) ? " checked" : ""}></td>
        <td><a class="mono" href="#/job/${esc(j.id)}">${short(j.id)}</a></td><td>${statusBadge(j.status)}</td>
        <td>${modelName(j.model_id)}</td><td>${esc(j.resolved_params ? j.resolved_params.device : j.params.device)}</td><td>${esc(j.host || "–")}</td>
        <td class="num">${r ? num(r.throughput_fps, 1) : "–"}</td><td class="num">${r ? ms(r.latency_ms.p99) : "–"}</td>
        <td>${r && r.stability ? verdictBadge(r.stability.verdict) : "–"}</td>
        <td>${live ? progressBar(j) : j.status === "queued" ? `#${j.queue_position}` : ""}</td><td class="muted">${when(j.created_at)}</td></tr>`;
    });
    document.getElementById("jobs-table").innerHTML = table(["", "Job", "Status", "Model", "Device", "Host",
      { label: "Throughput (fps)", num: 1 }, { label: "p99 (ms)", num: 1 }, "Verdict", "Progress", "Created"], rows, 'id="jobs"');
    document.getElementById("jobs-count").textContent = `${list.length} shown`;
    for (const box of document.querySelectorAll("input.pick")) {
      box.addEventListener("change", () => {
        if (box.checked) selected.add(box.value); else selected.delete(box.value);
        document.getElementById("compare-selected").disabled = selected.size < 2;
      });
    }
  };
  const redraw = () => { if (!pending) { pending = true; requestAnimationFrame(draw); } };
  const replace = (list) => { jobs.clear(); for (const j of list) jobs.set(j.id, j); redraw(); };
  replace(await get(`/jobs?${query}`));
  const fallback = () => onLeave(poll(`/jobs?${query}`, POLL_LIST_MS, (list) => { replace(list); return false; }));
  onLeave(subscribe("/events", (event, data) => {
    if (event === "job" && data.id) {
      if (matches(data)) jobs.set(data.id, data); else jobs.delete(data.id);
      redraw();
    } else if (event === "job_deleted") { jobs.delete(data.id); redraw(); }
    else if (event === "resync") { get(`/jobs?${query}`).then(replace); } // missed events: read the list again
  }, fallback));
}

/* ---- Job page ------------------------------------------------------------------------------ */

function timelineCharts(series) {
  return `<div class="grid2"><div class="card"><h2>Throughput per second</h2>${chart(series.map((s) => ({ name: s.name, color: s.color, points: (s.timeline || []).map((t) => [t.second, t.throughput_fps]) })), { xLabel: "second", yLabel: "inferences/s", id: "chart-throughput" })}</div>
    <div class="card"><h2>Median latency per second</h2>${chart(series.map((s) => ({ name: s.name, color: s.color, points: (s.timeline || []).filter((t) => t.median_latency_ms !== null).map((t) => [t.second, t.median_latency_ms]) })), { xLabel: "second", yLabel: "ms", id: "chart-latency" })}</div></div>`;
}

function renderResult(job) {
  const r = job.result;
  if (!r) {
    return job.error ? `<div class="notice error"><b>${esc(job.error.code)}</b>: ${esc(job.error.message)}</div>` : "";
  }
  const lat = r.latency_ms || {};
  const tiles = [["Throughput", `${num(r.throughput_fps, 1)} fps`], ["Median latency", `${ms(lat.median)} ms`],
    ["p99 latency", `${ms(lat.p99)} ms`], ["First inference", `${ms(r.first_inference_ms)} ms`],
    ["Compile", `${ms(r.compile_ms)} ms`], ["Iterations", num(r.iterations, 0)]]
    .map(([k, v]) => `<div class="tile"><b>${esc(v)}</b><span>${esc(k)}</span></div>`).join("");
  const dist = ["min", "median", "p90", "p95", "p99", "max"].map((k) => `<td class="num">${ms(lat[k])}</td>`).join("");
  const cpu = r.cpu_usage ? kv(r.cpu_usage) : `<p class="muted">–</p>`;
  const outputs = r.outputs && r.outputs.outputs ? table(["Output", "Shape", "Type", { label: "min", num: 1 }, { label: "max", num: 1 }, { label: "mean", num: 1 }, "NaN/Inf", "top-5"],
    r.outputs.outputs.map((o) => `<tr><td>${esc(o.name)}</td><td class="mono">${esc(JSON.stringify(o.shape))}</td><td>${esc(o.element_type)}</td><td class="num">${num(o.min, 4)}</td><td class="num">${num(o.max, 4)}</td><td class="num">${num(o.mean, 4)}</td><td>${o.nan_count}/${o.inf_count}</td><td class="mono">${esc(JSON.stringify(o.top5 || ""))}</td></tr>`)) : `<p class="muted">–</p>`;
  return `<div class="tiles">${tiles}</div>
    <p>Stability: ${verdictBadge(r.stability && r.stability.verdict)} <span class="muted">${esc(r.stability ? (r.stability.reasons || []).join(" ") : "")}</span></p>
    ${timelineCharts([{ name: "this job", timeline: r.timeline }])}
    <div class="card"><h2>Latency distribution (ms)</h2><table id="latency"><thead><tr><th class="num">min</th><th class="num">median</th><th class="num">p90</th><th class="num">p95</th><th class="num">p99</th><th class="num">max</th></tr></thead><tbody><tr>${dist}</tr></tbody></table></div>
    ${r.warnings && r.warnings.length ? `<div class="card"><h2>Warnings</h2><ul class="warnings">${r.warnings.map((w) => `<li>${esc(w)}</li>`).join("")}</ul></div>` : ""}
    <div class="grid2"><div class="card"><h2>Effective configuration</h2>${kv(r.config)}</div><div class="card"><h2>CPU usage</h2>${cpu}</div></div>
    <div class="card"><h2>Outputs</h2>${outputs}</div>
    <div class="card"><h2>Provenance</h2>${kv(r.provenance)}</div>`;
}

async function pageJob(params, id) {
  await loadModelNames();
  const path = `/jobs/${encodeURIComponent(id)}`;
  let job = await get(path);
  view().innerHTML = `<div class="page-head"><h1>Job <span class="mono">${esc(id)}</span></h1><div class="actions" id="job-actions"></div></div>
    <div id="job-error"></div><div id="job-head"></div><div id="job-result"></div>`;
  const head = document.getElementById("job-head");
  let shownResult = null;
  let cancelling = false;
  const drawActions = toolbar(document.getElementById("job-actions"), document.getElementById("job-error"), () => {
    const active = !FINAL.includes(job.status);
    return [
      active && {
        id: "job-cancel", label: cancelling ? "Cancelling…" : "Cancel", kind: "danger", disabled: cancelling,
        confirm: `Cancel job ${id.slice(0, 8)}? A running job stops within 2 s.`,
        run: async () => {
          const { body } = await api(`${path}/cancel`, { method: "POST" });
          cancelling = true;
          if (!FINAL.includes(job.status)) draw(body);  // a running job ends by the live updates
        },
      },
      {
        id: "job-rerun", label: "Rerun", kind: "secondary",
        run: async () => {
          const { body } = await api(`${path}/rerun`, { method: "POST" });
          location.hash = `#/job/${encodeURIComponent(body.id)}`;
        },
      },
      !active && {
        id: "job-delete", label: "Delete", kind: "danger",
        confirm: `Delete job ${id.slice(0, 8)} and its result? This cannot be undone.`,
        run: async () => {
          await api(path, { method: "DELETE" });
          location.hash = "#/jobs";
        },
      },
    ].filter(Boolean);
  });
  const draw = (j) => {
    if (!head.isConnected) return true;  // the page was left
    if (FINAL.includes(job.status) && !FINAL.includes(j.status)) return true;  // a stale read
    job = j;
    const p = j.resolved_params || j.params;
    head.innerHTML = `<div class="card">
      <p>${statusBadge(j.status)} model <a href="#/models">${modelName(j.model_id)}</a> on <b>${esc(p.device)}</b>${j.host ? ` at ${esc(j.host)}` : ""}, ${esc(p.api)} API
      ${j.queue_position ? `· queue position ${j.queue_position}` : ""} · created ${when(j.created_at)}
      ${j.sweep_id ? ` · <a href="#/sweep/${esc(j.sweep_id)}">sweep</a>` : ""}${j.rerun_of ? ` · rerun of <a class="mono" id="rerun-of" href="#/job/${esc(j.rerun_of)}">${short(j.rerun_of)}</a>` : ""} · <a href="#/compare?ids=${esc(j.id)}">compare with…</a></p>
      <div id="job-progress">${progressBar(j, true)}</div>
      <p class="muted">${num(j.progress.iterations, 0)} iterations, ${num(j.progress.elapsed_s, 1)} s elapsed</p>
      <details><summary>Parameters</summary>${kv(p)}</details></div>`;
    const key = FINAL.includes(j.status) ? j.status : null;
    if (key && shownResult !== key) {
      shownResult = key;
      document.getElementById("job-result").innerHTML = renderResult(j);
    }
    drawActions();
    return FINAL.includes(j.status);
  };
  draw(job);
  if (FINAL.includes(job.status)) { setLive(""); return; }
  const fallback = () => onLeave(poll(path, POLL_JOB_MS, draw));
  onLeave(subscribe(`${path}/events`, (event, data) => {
    if (event === "job" && data.id === id) draw(data);
  }, fallback));
}

/* ---- Submit page ---------------------------------------------------------------------------- */

const SKIP = new Set(["model_id", "dataset_id"]);

function resolveSchema(prop, openapi) {
  const resolve = (s) => (s && s.$ref ? openapi.components.schemas[s.$ref.split("/").pop()] : s);
  let s = resolve(prop);
  const options = (s.anyOf || s.oneOf || [s]).map(resolve).filter((o) => o.type !== "null");
  const types = new Set(options.map((o) => (o.enum ? "enum" : o.type)));
  const merged = Object.assign({}, ...options);
  return { types, merged, description: prop.description || s.description || "", default: prop.default };
}

function fieldHtml(name, prop, openapi) {
  const { types, merged, description, default: dflt } = resolveSchema(prop, openapi);
  if (types.has("array") || types.has("object")) return "";
  let input;
  if (types.size === 1 && types.has("boolean")) {
    input = `<input type="checkbox" name="${name}" id="in-${name}"${dflt ? " checked" : ""}>`;
  } else if (types.size === 1 && types.has("enum")) {
    input = `<select name="${name}" id="in-${name}">${dflt === undefined || dflt === null ? '<option value="">default</option>' : ""}${merged.enum.map((v) => `<option${v === dflt ? " selected" : ""}>${esc(v)}</option>`).join("")}</select>`;
  } else if (types.size === 1 && (types.has("integer") || types.has("number"))) {
    const lim = `${merged.minimum !== undefined ? ` min="${merged.minimum}"` : ""}${merged.maximum !== undefined ? ` max="${merged.maximum}"` : ""}`;
    input = `<input type="number" name="${name}" id="in-${name}" data-type="${[...types][0]}"${lim}${types.has("number") ? ' step="any"' : ""} value="${dflt === null || dflt === undefined ? "" : esc(dflt)}">`;
  } else {
    input = `<input type="text" name="${name}" id="in-${name}" data-type="${types.has("integer") ? "integer-or-text" : "text"}" value="${dflt === null || dflt === undefined ? "" : esc(dflt)}">`;
  }
  const limits = merged.minimum !== undefined || merged.maximum !== undefined ? ` (${merged.minimum ?? ""}…${merged.maximum ?? ""})` : "";
  return `<div class="field" data-field="${name}"><label for="in-${name}">${esc(name)}</label>${input}<span class="help">${esc(description)}${esc(limits)}</span><div class="err" id="err-${name}"></div></div>`;
}

function readForm(form) {
  const body = {};
  for (const el of form.querySelectorAll("[name]")) {
    if (el.type === "file") continue;
    if (el.type === "checkbox") { if (el.checked) body[el.name] = true; continue; }
    const raw = el.value.trim();
    if (raw === "") continue;
    const t = el.dataset.type;
    if ((t === "integer" || t === "integer-or-text") && /^-?\d+$/.test(raw)) body[el.name] = parseInt(raw, 10);
    else if (t === "number" && !Number.isNaN(Number(raw))) body[el.name] = Number(raw);
    else body[el.name] = raw;
  }
  return body;
}

function showErrors(form, error, fallbackBox) {
  for (const f of form.querySelectorAll(".field.invalid")) f.classList.remove("invalid");
  for (const e of form.querySelectorAll(".err")) e.textContent = "";
  const details = error.body && error.body.error && Array.isArray(error.body.error.details) ? error.body.error.details : [];
  const unplaced = [];
  for (const d of details) {
    const loc = (d.loc || []).filter((p) => p !== "body");
    const slot = loc.length ? form.querySelector(`#err-${CSS.escape(String(loc[0]))}`) : null;
    if (slot) {
      slot.textContent = (slot.textContent ? `${slot.textContent} ` : "") + d.msg;
      slot.closest(".field").classList.add("invalid");
    } else unplaced.push(`${loc.join(".")}: ${d.msg}`);
  }
  fallbackBox.innerHTML = !details.length || unplaced.length ? errorNotice(unplaced.length ? unplaced.join("; ") : error.message) : "";
}

async function upload(path, input) {
  const form = new FormData();
  for (const f of input.files) form.append("file", f, f.name);
  return (await api(path, { method: "POST", body: form })).body;
}

async function pageSubmit() {
  const [openapi, models, datasets] = await Promise.all([get("/openapi.json"), get("/models"), get("/datasets")]);
  const schema = openapi.components.schemas.JobCreate;
  const fields = Object.entries(schema.properties).filter(([n]) => !SKIP.has(n)).map(([n, p]) => fieldHtml(n, p, openapi)).join("");
  const modelOpts = (sel) => models.map((m) => `<option value="${esc(m.id)}"${m.id === sel ? " selected" : ""}>${esc(m.name)} (${short(m.id)}, ${esc(m.format)})</option>`).join("");
  const datasetOpts = (sel) => `<option value="">random data</option>${datasets.map((d) => `<option value="${esc(d.id)}"${d.id === sel ? " selected" : ""}>${d.count} files (${short(d.id)})</option>`).join("")}`;
  view().innerHTML = `<h1>Submit a benchmark</h1><form id="submit-form" class="card" novalidate>
    <h2>Model</h2>
    <div class="field" data-field="model_id"><label for="in-model_id">model_id</label><select name="model_id" id="in-model_id"><option value="">choose an uploaded model</option>${modelOpts("")}</select><span class="help">Or upload one: the .xml and .bin (or one .onnx, .tflite, .pdmodel file)</span><div class="err" id="err-model_id"></div></div>
    <div class="field" data-field="model_file"><label for="model-files">upload model</label><input type="file" id="model-files" multiple><span><button type="button" class="secondary" id="upload-model">Upload</button></span><div class="err" id="err-model_file"></div></div>
    <h2>Inputs</h2>
    <div class="field" data-field="dataset_id"><label for="in-dataset_id">dataset_id</label><select name="dataset_id" id="in-dataset_id">${datasetOpts("")}</select><span class="help">Uploaded images or .npy files; random data when none</span><div class="err" id="err-dataset_id"></div></div>
    <div class="field" data-field="dataset_file"><label for="dataset-files">upload images</label><input type="file" id="dataset-files" multiple><span><button type="button" class="secondary" id="upload-dataset">Upload</button></span><div class="err" id="err-dataset_file"></div></div>
    <h2>Run parameters</h2><p class="muted">Names and limits of <code>POST /jobs</code> (JobCreate); empty means the service's default.</p>
    ${fields}
    <div id="form-error"></div>
    <p><button type="submit" id="submit-job">Submit</button></p></form>`;
  const form = document.getElementById("submit-form");
  const bindUpload = (button, input, path, errId, after) => {
    document.getElementById(button).addEventListener("click", async () => {
      const slot = document.getElementById(errId);
      slot.textContent = "";
      if (!document.getElementById(input).files.length) { slot.textContent = "Choose files first."; return; }
      try { after(await upload(path, document.getElementById(input))); slot.textContent = ""; }
      catch (e) { slot.textContent = e.message; }
    });
  };
  bindUpload("upload-model", "model-files", "/models", "err-model_file", (m) => {
    models.unshift(m);
    document.getElementById("in-model_id").innerHTML = `<option value="">choose an uploaded model</option>${modelOpts(m.id)}`;
  });
  bindUpload("upload-dataset", "dataset-files", "/datasets", "err-dataset_file", (d) => {
    datasets.unshift(d);
    document.getElementById("in-dataset_id").innerHTML = datasetOpts(d.id);
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = document.getElementById("submit-job");
    button.disabled = true;
    try {
      const { body } = await api("/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(readForm(form)) });
      location.hash = `#/job/${body.id}`;
    } catch (error) {
      if (error.status !== 401) showErrors(form, error, document.getElementById("form-error"));
    } finally { button.disabled = false; }
  });
}

/* ---- Compare page ----------------------------------------------------------------------------- */

async function pageCompare(params) {
  const ids = (params.get("ids") || "").split(",").filter(Boolean);
  await loadModelNames();
  if (ids.length < 2) {
    const jobs = await get("/jobs?status=succeeded&limit=100");
    view().innerHTML = `<h1>Compare</h1><p>Pick two or more finished jobs; the first is the baseline.</p>
      ${table(["", "Job", "Model", "Device", { label: "Throughput (fps)", num: 1 }, "Created"], jobs.map((j) => `<tr><td><input type="checkbox" class="pick" value="${esc(j.id)}"${ids.includes(j.id) ? " checked" : ""}></td><td class="mono">${short(j.id)}</td><td>${modelName(j.model_id)}</td><td>${esc(j.params.device)}</td><td class="num">${j.result ? num(j.result.throughput_fps, 1) : "–"}</td><td class="muted">${when(j.created_at)}</td></tr>`), 'id="compare-pick"')}
      <p><button id="compare-go">Compare</button></p>`;
    document.getElementById("compare-go").addEventListener("click", () => {
      const picked = [...document.querySelectorAll("input.pick:checked")].map((b) => b.value);
      location.hash = `#/compare?ids=${picked.join(",")}`;
    });
    return;
  }
  const jobs = await Promise.all(ids.map((id) => get(`/jobs/${encodeURIComponent(id)}`)));
  const verdicts = await Promise.all(ids.slice(1).map((id) => get(`/compare?baseline=${encodeURIComponent(ids[0])}&candidate=${encodeURIComponent(id)}`).catch((e) => ({ failed: e.message }))));
  const lat = (j, k) => (j.result ? ms(j.result.latency_ms[k]) : "–");
  const rowsSpec = [
    ["Status", (j) => statusBadge(j.status)], ["Model", (j) => modelName(j.model_id)],
    ["Device", (j) => esc(j.resolved_params.device)], ["API", (j) => esc(j.resolved_params.api)],
    ["hint / nstreams / nireq / batch", (j) => { const c = j.result ? j.result.config : {}; return esc([c.hint, c.nstreams, c.nireq, c.batch_size].map((v) => v ?? "–").join(" / ")); }],
    ["Throughput (fps)", (j) => (j.result ? num(j.result.throughput_fps, 1) : "–")],
    ["Median latency (ms)", (j) => lat(j, "median")], ["p90 (ms)", (j) => lat(j, "p90")], ["p95 (ms)", (j) => lat(j, "p95")], ["p99 (ms)", (j) => lat(j, "p99")],
    ["First inference (ms)", (j) => (j.result ? ms(j.result.first_inference_ms) : "–")], ["Compile (ms)", (j) => (j.result ? ms(j.result.compile_ms) : "–")],
    ["Stability", (j) => (j.result && j.result.stability ? verdictBadge(j.result.stability.verdict) : "–")],
  ];
  const head = `<tr><th></th>${jobs.map((j, i) => `<th><a class="mono" href="#/job/${esc(j.id)}">${short(j.id)}</a> <span style="color:${COLORS[i % COLORS.length]}">■</span>${i === 0 ? " (baseline)" : ""}</th>`).join("")}</tr>`;
  const body = rowsSpec.map(([label, f]) => `<tr><th>${esc(label)}</th>${jobs.map((j) => `<td>${f(j)}</td>`).join("")}</tr>`).join("");
  const verdictCards = verdicts.map((v, i) => (v.failed ? `<div class="card">${errorNotice(`${short(ids[i + 1])}: ${v.failed}`)}</div>`
    : `<div class="card verdict-card"><h2>${short(ids[i + 1])} vs baseline ${short(ids[0])}: ${verdictBadge(v.verdict)} <span class="muted">(threshold ${num(v.threshold * 100, 1)}%)</span></h2>
      ${table(["Metric", "Better", { label: "Baseline", num: 1 }, { label: "Candidate", num: 1 }, { label: "Ratio", num: 1 }, "Verdict", "Note"], v.metrics.map((m) => `<tr><td>${esc(m.metric)}</td><td>${esc(m.better)}</td><td class="num">${num(m.baseline, 4)}</td><td class="num">${num(m.candidate, 4)}</td><td class="num">${num(m.ratio, 3)}</td><td>${verdictBadge(m.verdict)}</td><td class="muted">${esc(m.note || "")}</td></tr>`))}</div>`)).join("");
  view().innerHTML = `<h1>Compare ${jobs.length} jobs</h1><div class="card"><table id="compare-table"><thead>${head}</thead><tbody>${body}</tbody></table></div>
    ${timelineCharts(jobs.map((j, i) => ({ name: short(j.id), color: COLORS[i % COLORS.length], timeline: j.result ? j.result.timeline : [] })))}${verdictCards}`;
}

/* ---- Sweeps, models, datasets, devices & hosts ------------------------------------------------ */

async function pageSweeps() {
  await loadModelNames();
  const sweeps = await get("/sweeps");
  view().innerHTML = `<h1>Sweeps</h1>${table(["Sweep", "Status", "Model", "Strategy", "Objective", "Points", "Progress", "Created"], sweeps.map((s) => `<tr><td><a class="mono" href="#/sweep/${esc(s.id)}">${short(s.id)}</a></td><td>${statusBadge(s.status)}</td><td>${modelName(s.model_id)}</td><td>${esc(s.strategy)}</td><td>${esc(s.objective)}</td><td>${s.progress.points_done}/${s.progress.points_total}</td><td>${progressBar({ status: s.status, progress: s.progress })}</td><td class="muted">${when(s.created_at)}</td></tr>`), 'id="sweeps"')}
    <p class="muted">Start one with <code>POST /sweeps</code> or <code>ovbench sweep</code>.</p>`;
}

async function pageSweep(params, id) {
  await loadModelNames();
  const path = `/sweeps/${encodeURIComponent(id)}`;
  let sweep = await get(path);
  view().innerHTML = `<div class="page-head"><h1>Sweep <span class="mono">${esc(id)}</span></h1><div class="actions" id="sweep-actions"></div></div>
    <div id="sweep-error"></div><div id="sweep-body"></div>`;
  const body = document.getElementById("sweep-body");
  let cancelling = false;
  const drawActions = toolbar(document.getElementById("sweep-actions"), document.getElementById("sweep-error"), () => (
    !FINAL.includes(sweep.status) ? [{
      id: "sweep-cancel", label: cancelling ? "Cancelling…" : "Cancel", kind: "danger", disabled: cancelling,
      confirm: `Cancel sweep ${id.slice(0, 8)}? Its queued points are cancelled, a running one stops within 2 s.`,
      run: async () => {
        const answer = await api(`${path}/cancel`, { method: "POST" });
        cancelling = true;
        draw(answer.body);  // a running point ends by the live updates
      },
    }] : [{
      id: "sweep-delete", label: "Delete", kind: "danger",
      confirm: `Delete sweep ${id.slice(0, 8)} with the jobs of its ${sweep.points.filter((p) => p.job_id).length} points? This cannot be undone.`,
      run: async () => {
        await api(path, { method: "DELETE" });
        location.hash = "#/sweeps";
      },
    }]));
  let stopEvents = () => {};
  const draw = (s) => {
    if (!body.isConnected) return true;  // the page was left
    if (FINAL.includes(sweep.status) && !FINAL.includes(s.status)) return true;  // a stale read
    sweep = s;
    body.innerHTML = sweepBody(s);
    drawActions();
    if (!FINAL.includes(s.status)) return false;
    stopEvents();
    setLive("");
    return true;
  };
  if (draw(sweep)) return;
  // Live while it runs: a change of one of its points' jobs (GET /events) reads the sweep again;
  // polls of GET /sweeps/{id} when the events fail.
  let reading = false;
  let again = false;
  const refresh = async () => {
    if (reading) { again = true; return; }
    reading = true;
    try {
      do { again = false; if (draw(await get(path))) return; } while (again);
    } catch (e) { /* the next event reads again */ } finally { reading = false; }
  };
  const fallback = () => onLeave(poll(path, POLL_LIST_MS, draw));
  stopEvents = subscribe("/events", (event, data) => {
    if ((event === "job" && data.sweep_id === id) || event === "resync") refresh();
  }, fallback, refresh);
  onLeave(stopEvents);
}

function sweepBody(s) {
  const metric = s.summary.pareto_metric in (s.points[0] || {}) ? s.summary.pareto_metric : "latency_median_ms";
  const done = s.points.filter((p) => p.throughput_fps !== null && p[metric] !== null);
  const best = s.summary.best;
  const series = [{ name: "points", color: COLORS[0], points: done.filter((p) => p.index !== best).map((p) => [p[metric], p.throughput_fps, p.label]) }];
  if (best !== null) series.push({ name: "best", color: COLORS[2], points: done.filter((p) => p.index === best).map((p) => [p[metric], p.throughput_fps, p.label]) });
  return `<div class="card"><p id="sweep-status">${statusBadge(s.status)} ${modelName(s.model_id)} · ${esc(s.strategy)} · objective ${esc(s.objective)} · ${s.progress.points_done}/${s.progress.points_total} points</p>
    <p><b>${esc(s.summary.message)}</b></p>${(s.summary.notes || []).map((n) => `<p class="muted">${esc(n)}</p>`).join("")}</div>
    <div class="card"><h2>Throughput vs ${esc(metric)}</h2>${chart(series, { xLabel: metric, yLabel: "inferences/s", lines: false, id: "chart-sweep" })}</div>
    ${table(["#", "Point", "Status", "Job", { label: "Throughput (fps)", num: 1 }, { label: "median (ms)", num: 1 }, { label: "p99 (ms)", num: 1 }, "Verdict"], s.points.map((p) => `<tr${p.index === best ? ' class="best"' : ""}><td>${p.index}${p.index === best ? " ★ best" : ""}</td><td class="mono">${esc(p.label)}</td><td>${statusBadge(p.status)}</td><td>${p.job_id ? `<a class="mono" href="#/job/${esc(p.job_id)}">${short(p.job_id)}</a>` : "–"}</td><td class="num">${num(p.throughput_fps, 1)}</td><td class="num">${ms(p.latency_median_ms)}</td><td class="num">${ms(p.latency_p99_ms)}</td><td>${verdictBadge(p.verdict)}</td></tr>`), 'id="sweep-points"')}`;
}

async function pageModels() {
  const models = await get("/models");
  const ports = (ps) => ps.map((p) => `${esc(p.name)} <span class="mono">${esc(p.shape)} ${esc(p.element_type)}</span>`).join("<br>");
  view().innerHTML = `<h1>Models</h1>${table(["Name", "Id", "Format", { label: "Size", num: 1 }, "Inputs", "Outputs", "Uploaded", ""], models.map((m) => `<tr><td>${esc(m.name)}</td><td class="mono">${short(m.id)}</td><td>${esc(m.format)}</td><td class="num">${bytes(m.size_bytes)}</td><td>${ports(m.inputs)}</td><td>${ports(m.outputs)}</td><td class="muted">${when(m.created_at)}</td><td><a href="#/jobs?model=${esc(m.id)}">jobs</a></td></tr>`), 'id="models"')}`;
}

async function pageDatasets() {
  const datasets = await get("/datasets");
  view().innerHTML = `<h1>Datasets</h1>${table(["Id", { label: "Files", num: 1 }, { label: "Size", num: 1 }, "Contents", "Uploaded"], datasets.map((d) => `<tr><td class="mono">${short(d.id)}</td><td class="num">${d.count}</td><td class="num">${bytes(d.size_bytes)}</td><td>${d.files.slice(0, 6).map((f) => `${esc(f.name)}${f.width ? ` <span class="muted">${f.width}×${f.height}</span>` : ""}`).join(", ")}${d.files.length > 6 ? " …" : ""}</td><td class="muted">${when(d.created_at)}</td></tr>`), 'id="datasets"')}`;
}

async function pageDevices() {
  const [devices, hosts] = await Promise.all([get("/devices"), get("/hosts").catch((e) => { if (e.status === 401) throw e; return []; })]);
  view().innerHTML = `<h1>Devices</h1>${table(["Device", "Name", "Hosts", "Properties"], devices.map((d) => `<tr><td><b>${esc(d.name)}</b></td><td>${esc(d.full_name)}</td><td>${esc((d.hosts || ["this host"]).join(", "))}</td><td><details><summary>${Object.keys(d.properties).length} properties</summary>${kv(d.properties)}</details></td></tr>`), 'id="devices"')}
    <h1>Hosts</h1>${hosts.length ? table(["Host", "State", "Labels", "Devices", "Heartbeat age (s)", "Current job", { label: "Queued", num: 1 }], hosts.map((h) => `<tr><td>${esc(h.name)}</td><td>${statusBadge(h.state)}</td><td class="mono">${esc(Object.entries(h.labels).map(([k, v]) => `${k}=${v}`).join(" "))}</td><td>${esc(h.devices.map((d) => d.name).join(", "))}</td><td class="num">${num(h.heartbeat_age_s, 1)}</td><td>${h.current_job_id ? `<a class="mono" href="#/job/${esc(h.current_job_id)}">${short(h.current_job_id)}</a>` : "–"}</td><td class="num">${h.queue_depth}</td></tr>`), 'id="hosts"') : `<p class="muted" id="hosts">Single-host mode: this service's own worker runs the jobs (fleet mode lists its agents here).</p>`}`;
}

/* ---- Router ----------------------------------------------------------------------------------- */

const PAGES = { jobs: pageJobs, job: pageJob, submit: pageSubmit, compare: pageCompare, sweeps: pageSweeps, sweep: pageSweep, models: pageModels, datasets: pageDatasets, devices: pageDevices, hosts: pageDevices };

async function route() {
  stops.forEach((s) => s()); stops = [];
  setLive("");
  const hash = location.hash.replace(/^#\/?/, "") || "jobs";
  const [path, query] = hash.split("?");
  const [page, arg] = path.split("/");
  const render = PAGES[page] || pageJobs;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === (page === "job" ? "jobs" : page === "sweep" ? "sweeps" : page === "hosts" ? "devices" : page));
  document.getElementById("signout").hidden = !token();
  try {
    await render(new URLSearchParams(query || ""), arg ? decodeURIComponent(arg) : undefined);
    document.body.dataset.page = page;
  } catch (e) {
    if (e.status !== 401) view().innerHTML = errorNotice(e);
  }
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("signout").addEventListener("click", (e) => { e.preventDefault(); sessionStorage.removeItem(TOKEN_KEY); route(); });
  route();
});
