/**
 * The operator console's page and script: static text with no data in it. The script takes the
 * operator token from the URL fragment (`/console#token=...`, never sent to the server) or a
 * form, keeps it in sessionStorage, and polls `GET /v1/console/state` with it. Everything shown
 * is set with textContent (the host's strings are never parsed as HTML), and the page's CSP
 * allows only its own script and same-origin requests.
 *
 * Trust zone: UNTRUSTED (host); shows public metadata only (see console-state.ts).
 *
 * @module
 */

export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const CONSOLE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>cmr console</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d232a; background: #f6f7f9; }
  header { background: #1d2b3a; color: #fff; padding: 10px 18px; display: flex; gap: 18px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 17px; margin: 0; }
  .sim { background: #b3261e; color: #fff; padding: 6px 18px; font-weight: 600; }
  main { padding: 12px 18px; display: grid; gap: 14px; }
  section { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 10px 14px; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eef0f3; vertical-align: top; }
  th { font-weight: 600; color: #4a5560; font-size: 12px; text-transform: uppercase; }
  code, .mono { font-family: ui-monospace, monospace; font-size: 12px; }
  .live, .succeeded, .accepted { color: #1b7f3b; font-weight: 600; }
  .failed, .refused, .unreachable, .unhealthy { color: #b3261e; font-weight: 600; }
  .running { color: #8a5a00; font-weight: 600; }
  .bar { display: inline-block; width: 90px; height: 8px; background: #e5e8ec; border-radius: 4px; vertical-align: middle; margin-right: 6px; }
  .bar > i { display: block; height: 8px; background: #3d7bd9; border-radius: 4px; }
  .muted { color: #6b7680; }
  #login { display: none; }
  details summary { cursor: pointer; }
</style>
</head>
<body>
<header><h1>cmr console</h1><span id="coordinator" class="mono"></span><span id="updated" class="muted"></span></header>
<div id="simulated" class="sim" hidden>SIMULATED TEE: no hardware protection (development only)</div>
<main>
  <section id="login"><h2>Operator token</h2><p>Paste the coordinator's operator token (&lt;data-dir&gt;/coordinator/operator-token). It stays in this tab.</p>
    <input id="token" type="password" size="60" autocomplete="off"> <button id="go" type="button">Show</button> <span id="login-error" class="failed"></span></section>
  <section><h2>Nodes</h2><table id="nodes"><thead><tr><th>worker</th><th>health</th><th>attested measurement</th><th>TEE</th><th>capabilities</th><th>data types</th><th>url</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Verification node</h2><div id="verifier" class="muted">no verification node (quotes are not group-signed)</div></section>
  <section><h2>Jobs</h2><table id="jobs"><thead><tr><th>job</th><th>state</th><th>progress</th><th>stage timings</th><th>attestations</th><th>result / failure</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Attestation audit per job</h2><div id="audit" class="muted">no jobs yet</div></section>
  <section><h2>Failures</h2><table id="failures"><thead><tr><th>when</th><th>job</th><th>what</th><th>code</th><th>message</th></tr></thead><tbody></tbody></table></section>
</main>
<script src="/console/app.js"></script>
</body>
</html>
`;

export const CONSOLE_JS = `"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; };
  const row = (cells) => { const tr = document.createElement("tr"); for (const c of cells) { const td = document.createElement("td"); if (c instanceof Node) td.appendChild(c); else td.textContent = c === undefined || c === null ? "" : String(c); tr.appendChild(td); } return tr; };
  const short = (h) => (h ? h.slice(0, 16) + "\\u2026" : "");
  const fill = (tbody, rows) => { tbody.replaceChildren(...rows); };
  const m = /(?:^|[#&])token=([0-9A-Za-z]+)/.exec(location.hash);
  if (m) { sessionStorage.setItem("cmr-token", m[1]); history.replaceState(null, "", location.pathname + location.search); }
  const interval = Number(new URLSearchParams(location.search).get("interval")) || 1000;
  let timer;

  function bar(done, total) {
    const b = el("span", undefined, "bar"); const i = document.createElement("i");
    i.style.width = (total ? Math.round((done / total) * 100) : 0) + "%"; b.appendChild(i);
    const s = el("span"); s.appendChild(b); s.appendChild(document.createTextNode(done + "/" + total)); return s;
  }

  function progress(j) {
    const p = j.progress; const d = el("div");
    if (j.state === "splitting") d.appendChild(el("div", "split: " + (j.split ? (j.split.records !== undefined ? j.split.records + " records read" : "records hidden") + (j.split.bytes !== undefined ? ", " + j.split.bytes + " bytes" : "") : "reading the upload")));
    else d.appendChild(el("div", p.inputRecords !== undefined ? p.inputRecords + " records" : "record count hidden (--hide)"));
    const mp = el("div", "map "); mp.appendChild(bar(p.mapsDone, p.shards)); d.appendChild(mp);
    const rd = el("div", "reduce "); rd.appendChild(bar(p.reducesDone, p.reducers)); d.appendChild(rd);
    return d;
  }

  function render(s) {
    $("login").style.display = "none";
    $("coordinator").textContent = "coordinator " + short(s.coordinator.measurement) + " · " + s.coordinator.tee + " · isolation " + s.coordinator.isolation + " · enclaves " + s.coordinator.enclaves.map((e) => e.scope).join(", ");
    $("simulated").hidden = !s.coordinator.simulated;
    $("updated").textContent = "updated " + new Date(s.generatedAt).toLocaleTimeString();
    fill($("nodes").tBodies[0], s.nodes.map((n) => { const r = row([n.workerId, el("span", n.health, n.health), n.attested ? el("code", n.attested.measurement) : el("span", "not attested yet", "muted"), n.attested ? n.attested.tee : "", n.capabilities.join(", "), n.dataTypes.length ? n.dataTypes.join(", ") : "any", el("code", n.url)]); r.dataset.worker = n.workerId; if (n.healthDetail) r.title = n.healthDetail; return r; }));
    const v = $("verifier"); v.replaceChildren();
    if (!s.verifier) { v.className = "muted"; v.textContent = "no verification node (quotes are not group-signed)"; }
    else {
      v.className = "";
      v.appendChild(el("div", "verifier " + s.verifier.url));
      v.appendChild(el("div", "group (gvcert id) " + (s.verifier.group || "not joined")));
      const rv = s.verifier.revocations;
      v.appendChild(el("div", rv ? "revocations: " + rv.revoked + " revoked member key(s)" + (rv.issuedAt ? ", list issued " + rv.issuedAt : "") + (rv.entries.length ? " (" + rv.entries.join(", ") + ")" : "") : "revocations: list not available"));
    }
    const running = (st) => st !== "succeeded" && st !== "failed";
    fill($("jobs").tBodies[0], s.jobs.map((j) => {
      const acc = j.attestations.filter((a) => a.result === "accepted").length, ref = j.attestations.length - acc;
      const t = Object.entries(j.timings).map(([k, ms]) => k + " " + ms + " ms").join(", ");
      const res = j.error ? el("span", j.error.code + ": " + j.error.message, "failed") : j.rows !== undefined ? el("span", j.rows + " rows" + (j.collectedAt ? " (objects collected)" : "")) : el("span", "");
      const r = row([el("code", j.jobId), el("span", j.state + (j.resumedFrom ? " (resumed from " + j.resumedFrom + ")" : ""), running(j.state) ? "running" : j.state), progress(j), t, acc + " accepted, " + ref + " refused", res]);
      r.dataset.job = j.jobId; r.dataset.state = j.state; return r;
    }));
    const audit = $("audit"); audit.replaceChildren(); audit.className = s.jobs.length ? "" : "muted";
    if (!s.jobs.length) audit.textContent = "no jobs yet";
    for (const j of s.jobs) {
      const d = document.createElement("details"); d.dataset.job = j.jobId;
      d.appendChild(el("summary", j.jobId + " — " + j.attestations.length + " attestation(s), " + j.assignments.length + " task assignment(s)"));
      const t = document.createElement("table"); t.appendChild(row(["time", "worker", "phase", "result", "measurement", "TEE / error"]));
      for (const a of j.attestations) t.appendChild(row([a.at, a.worker, a.phase, el("span", a.result, a.result), a.measurement ? el("code", a.measurement) : "", a.error ? a.error.code + ": " + a.error.message : a.simulated ? "simulated" : "hardware"]));
      for (const x of j.assignments) t.appendChild(row(["", x.worker, x.task, x.outcome, "attempt " + x.attempt, ""]));
      d.appendChild(t); audit.appendChild(d);
    }
    const failures = [];
    for (const j of s.jobs) {
      if (j.error) failures.push([j.updatedAt, j.jobId, "job failed", j.error.code, j.error.message]);
      for (const a of j.attestations) if (a.error) failures.push([a.at, j.jobId, "attestation of " + a.worker + " (" + a.phase + ") refused", a.error.code, a.error.message]);
      for (const x of j.assignments) if (x.outcome !== "ok") failures.push(["", j.jobId, "task " + x.task + " on " + x.worker + ": " + x.outcome, "", ""]);
    }
    fill($("failures").tBodies[0], failures.map((f) => { const r = row([f[0], el("code", f[1]), f[2], el("code", f[3]), f[4]]); r.dataset.code = f[3]; return r; }));
    document.body.dataset.ready = "1";
  }

  async function poll() {
    const token = sessionStorage.getItem("cmr-token");
    if (!token) { $("login").style.display = "block"; return; }
    try {
      const res = await fetch("/v1/console/state", { headers: { authorization: "Bearer " + token }, cache: "no-store" });
      if (res.status === 401) { sessionStorage.removeItem("cmr-token"); $("login").style.display = "block"; $("login-error").textContent = "the token was refused"; return; }
      render(await res.json());
    } catch (e) { $("updated").textContent = "coordinator not answering; retrying"; }
    timer = setTimeout(poll, interval);
  }
  $("go").addEventListener("click", () => { sessionStorage.setItem("cmr-token", $("token").value.trim()); $("login-error").textContent = ""; clearTimeout(timer); poll(); });
  poll();
})();
`;
