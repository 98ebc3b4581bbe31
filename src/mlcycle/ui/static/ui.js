// mlcycle dashboard: plots (the shared Plotly), the live run page, login and actions.
// The admin token lives in this tab's sessionStorage and travels only as a Bearer header.
"use strict";

const TOKEN_KEY = "mlcycle.admin-token";
const ACTION_HEADER = document.body.dataset.actionHeader;
const BASE = document.body.dataset.base;  // where the dashboard is mounted ("" at the root)

function plot(div, traces, title) {
  Plotly.newPlot(div, traces, {
    title: {text: title}, margin: {t: 40, r: 20, b: 40, l: 50},
    xaxis: {title: {text: "epoch"}}, legend: {orientation: "h"},
  }, {displaylogo: false, responsive: true});
}

function traceOf(name, points) {
  return {name: name, mode: "lines+markers", x: points.map(p => p[0]), y: points.map(p => p[1])};
}

async function followRun(div) {
  const run = div.dataset.run;
  const curves = {};
  let last = -1;
  let drawn = false;
  async function poll() {
    const response = await fetch(`${BASE}/api/runs/${run}/metrics?after=${last}`);
    if (!response.ok) return false;
    const body = await response.json();
    for (const [key, points] of Object.entries(body.points)) {
      (curves[key] = curves[key] || []).push(...points);
      for (const p of points) last = Math.max(last, p[0]);
    }
    const keys = Object.keys(curves).sort();
    if (!drawn || Object.keys(body.points).length) {
      if (keys.length) {
        plot(div, keys.map(k => traceOf(k, curves[k])), "per epoch");
        drawn = true;
      } else {
        div.textContent = "no metrics logged yet";
      }
    }
    const status = document.getElementById("run-status");
    if (status && status.textContent !== body.status) {
      status.textContent = body.status;
      status.className = `status ${body.status}`;
    }
    return body.status === "running";
  }
  let live = await poll();
  while (live && div.dataset.live === "true") {
    await new Promise(r => setTimeout(r, Number(div.dataset.pollMs)));
    live = await poll();
  }
}

function compareCurves(div) {
  const data = JSON.parse(document.getElementById("compare-data").textContent);
  const keys = new Set();
  for (const curves of Object.values(data.curves)) Object.keys(curves).forEach(k => keys.add(k));
  const sorted = [...keys].sort();
  const wanted = sorted.filter(k => k.startsWith("val_")).concat(sorted.filter(k => !k.startsWith("val_")));
  const traces = [];
  for (const key of wanted.slice(0, 2)) {
    for (const [run, curves] of Object.entries(data.curves)) {
      if (curves[key]) traces.push(traceOf(`${data.names[run]} ${key}`, curves[key]));
    }
  }
  if (traces.length) plot(div, traces, wanted.slice(0, 2).join(", ")); else div.textContent = "no curves";
}

// A plot the server prepared: {title, y, traces, range?, barmode?} in the JSON script the
// div names, time on x (over `range` when given: the window the figures are of).
function drawSeries(div) {
  const spec = JSON.parse(document.getElementById(div.dataset.series).textContent);
  const xaxis = {type: "date"};
  if (spec.range) xaxis.range = spec.range;
  Plotly.newPlot(div, spec.traces, {
    title: {text: spec.title}, margin: {t: 40, r: 20, b: 40, l: 60}, barmode: spec.barmode,
    xaxis: xaxis, yaxis: {title: {text: spec.y}}, legend: {orientation: "h", y: -0.22},
  }, {displaylogo: false, responsive: true});
}

function showLogin() {
  const loggedIn = sessionStorage.getItem(TOKEN_KEY) !== null;
  const form = document.getElementById("login-form");
  if (!form) return;
  form.hidden = loggedIn;
  document.getElementById("logged-in").hidden = !loggedIn;
  for (const f of document.querySelectorAll("form.action")) f.hidden = !loggedIn;
  const hint = document.getElementById("login-hint");
  if (hint) hint.hidden = loggedIn;
}

async function act(path, body, token) {
  const response = await fetch(path, {
    method: "POST",
    headers: {"Content-Type": "application/json", "Authorization": `Bearer ${token}`, [ACTION_HEADER]: "1"},
    body: JSON.stringify(body),
  });
  let answer = {};
  try { answer = await response.json(); } catch (e) { /* not JSON */ }
  return {ok: response.ok, status: response.status, body: answer};
}

function setupLogin() {
  const form = document.getElementById("login-form");
  if (!form) return;
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const token = document.getElementById("token").value;
    const answer = await act(`${BASE}/api/login`, {}, token);
    if (answer.ok) {
      sessionStorage.setItem(TOKEN_KEY, token);
      document.getElementById("token").value = "";
    } else {
      alert(answer.body.error || `login refused (${answer.status})`);
    }
    showLogin();
  });
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin();
  });
  showLogin();
}

function setupActions() {
  const result = document.getElementById("action-result");
  const forms = {"alias-form": "alias", "rollback-form": "rollback", "promotions-form": "promotions"};
  for (const [id, route] of Object.entries(forms)) {
    const form = document.getElementById(id);
    if (!form) continue;
    form.addEventListener("submit", async event => {
      event.preventDefault();
      const data = Object.fromEntries(new FormData(form));
      if (data.version !== undefined) data.version = Number(data.version);
      if (data.held !== undefined) data.held = data.held === "true";
      const path = `${BASE}/api/models/${encodeURIComponent(form.dataset.model)}/${route}`;
      const answer = await act(path, data, sessionStorage.getItem(TOKEN_KEY) || "");
      if (answer.ok) {
        location.reload();
      } else {
        result.textContent = answer.body.error || `refused (${answer.status})`;
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setupLogin();
  setupActions();
  const curves = document.getElementById("curves");
  if (curves) followRun(curves);
  const compared = document.getElementById("compare-curves");
  if (compared) compareCurves(compared);
  for (const div of document.querySelectorAll("div[data-series]")) drawSeries(div);
});
