// The status page's HTML: one document per node, server-rendered, with its style and a small
// script inline (covered by the Content-Security-Policy hashes, nothing loaded from elsewhere).
// The script only listens to /status/events and swaps in the job sections the server rendered.
import { createHash } from "node:crypto";
import { Consistency } from "@lull/proto";
import { modeName, phaseName } from "@lull/shared";
import type { JobView, StackHistory } from "./model.js";
import { downtimeChartSvg, esc, formatMs, timelineSvg } from "./svg.js";

export const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d232a;background:#fafbfc}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .5em;border-bottom:1px solid #d0d7de}
.muted{color:#57606a}.job{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.6em .8em;margin:.6em 0}
.job h3{font-size:1em;margin:0 0 .3em}.badge{display:inline-block;padding:0 .5em;border-radius:1em;font-size:.85em;background:#eaeef2}
.badge.done{background:#dafbe1}.badge.failed{background:#ffebe9}.badge.cancelled{background:#fff8c5}.badge.running{background:#ddf4ff}
.error{color:#cf222e}.charts{display:flex;flex-wrap:wrap;gap:1em}.charts figure{margin:0;background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.4em}
figcaption{font-size:.9em;color:#57606a}svg text{font:11px system-ui,sans-serif;fill:#1d232a}svg text.axis,svg text.stack-note{fill:#57606a}
rect.phase{stroke:#fff;stroke-width:1}.phase-queued{fill:#d0d7de}.phase-quiescing{fill:#f9c513}.phase-snapshotting{fill:#fb8f44}
.phase-snapshotted{fill:#54aeff}.phase-archiving{fill:#218bff}.phase-unknown{fill:#afb8c1}
rect.down{fill:#cf222e;opacity:.8}rect.down.open{fill:url(#none);fill:#ff8182}line.track-base{stroke:#d0d7de}
line.snapshot{stroke:#8250df;stroke-width:2;stroke-dasharray:4 2}rect.bar{fill:#cf222e;opacity:.8}line.axis-line{stroke:#57606a}
.legend{font-size:.85em;color:#57606a;margin:.3em 0}.legend i{display:inline-block;width:.9em;height:.9em;vertical-align:-.1em;margin:0 .25em 0 .8em;border-radius:2px}
.legend .queued{background:#d0d7de}.legend .quiescing{background:#f9c513}.legend .snapshotting{background:#fb8f44}.legend .snapshotted{background:#54aeff}
.legend .archiving{background:#218bff}.legend .down{background:#cf222e}.legend .snap{background:none;border-left:2px dashed #8250df;border-radius:0;width:0}
#live{font-size:.85em}#live.on{color:#1a7f37}#live.off{color:#cf222e}
`;

export const SCRIPT = `
(function(){
  var live=document.getElementById('live');
  function place(id,html,running){
    var old=document.getElementById('job-'+id);if(old)old.remove();
    var box=document.getElementById(running?'running-jobs':'recent-jobs');
    var t=document.createElement('template');t.innerHTML=html;box.insertBefore(t.content,box.firstChild);
    var empty=box.querySelector('.empty');if(empty)empty.remove();
    if(!running){var r=document.getElementById('running-jobs');if(!r.querySelector('.job')&&!r.querySelector('.empty')){r.innerHTML='<p class="empty muted">no job is running</p>';}}
  }
  var es=new EventSource('/status/events');
  es.onopen=function(){live.textContent='live';live.className='on';};
  es.onerror=function(){live.textContent='reconnecting…';live.className='off';};
  es.addEventListener('job',function(m){var d=JSON.parse(m.data);place(d.id,d.html,d.running);});
  es.addEventListener('charts',function(m){var d=JSON.parse(m.data);var c=document.getElementById('charts');c.innerHTML=d.html;});
})();
`;

function sha256(text: string): string {
  return `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
}

/** Nothing from elsewhere; only this page's own style, script and event stream. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `style-src ${sha256(STYLE)}`,
  `script-src ${sha256(SCRIPT)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

function consistencyName(c: Consistency): string {
  return c === Consistency.CONSISTENCY_APP ? "app" : c === Consistency.CONSISTENCY_CRASH ? "crash" : "unknown";
}

function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function time(d: Date | undefined): string {
  return d ? `<time datetime="${d.toISOString()}">${esc(d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z"))}</time>` : "—";
}

/** One job's section: what it is, its numbers and its timeline. */
export function jobSection(view: JobView): string {
  const j = view.job;
  const phase = phaseName(j.phase);
  const badge = view.running ? "running" : phase;
  const facts: string[] = [`created ${time(j.createdAt)}`, `engine ${esc(j.engine)}`];
  if (j.mode) facts.push(`mode ${esc(modeName(j.mode))}`);
  if (j.consistency) facts.push(`consistency ${esc(consistencyName(j.consistency))}`);
  if (view.running && j.bytesTotal > 0) facts.push(`${Math.floor((100 * j.bytesDone) / j.bytesTotal)} % archived`);
  if (!view.running) facts.push(`took ${formatMs(j.totalMs)}`);
  if (j.archiveBytes > 0) facts.push(`${formatBytes(j.archiveBytes)} archive`);
  const stacks = j.stacks.map((s) => `${esc(s.stack)} ${s.downtimeMs > 0 || s.resumedAt ? formatMs(s.downtimeMs) : "—"}`).join(", ");
  return [
    `<article class="job" id="job-${esc(j.id)}" data-phase="${esc(phase)}">`,
    `<h3>guest ${esc(j.guestId)} · <code>${esc(j.id)}</code> <span class="badge ${esc(badge)}">${esc(phase)}</span></h3>`,
    `<div class="muted">${facts.join(" · ")}${stacks ? ` · downtime: ${stacks}` : ""}</div>`,
    j.errorMessage ? `<div class="error">${esc(j.errorCode)}: ${esc(j.errorMessage)}</div>` : "",
    view.phasesIncomplete ? `<div class="muted">some of this job's events were pruned by retention: the phase track is incomplete</div>` : "",
    timelineSvg(view),
    `</article>`,
  ].join("");
}

export function chartsSection(histories: readonly StackHistory[], n: number): string {
  if (histories.length === 0) return `<p class="empty muted">no stack has been resumed in the last ${n} backups of any guest</p>`;
  return histories
    .map((h) => `<figure>${downtimeChartSvg(h)}<figcaption>guest ${esc(h.guestId)} · stack ${esc(h.stack)}</figcaption></figure>`)
    .join("");
}

export function statusPage(input: { node: string; running: JobView[]; recent: JobView[]; histories: StackHistory[]; downtimeBackups: number; now: number }): string {
  const running = input.running.length ? input.running.map(jobSection).join("") : `<p class="empty muted">no job is running</p>`;
  const recent = input.recent.length ? input.recent.map(jobSection).join("") : `<p class="empty muted">no job has ended yet</p>`;
  return [
    "<!doctype html>",
    `<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,">`,
    `<title>Lull · ${esc(input.node)}</title><style>${STYLE}</style></head><body>`,
    `<h1>Lull · node ${esc(input.node)}</h1>`,
    `<div class="muted">rendered ${time(new Date(input.now))} · <span id="live" class="off">connecting…</span></div>`,
    `<div class="legend">phases:<i class="queued"></i>queued<i class="quiescing"></i>quiescing<i class="snapshotting"></i>snapshotting<i class="snapshotted"></i>snapshotted<i class="archiving"></i>archiving · each stack's track:<i class="down"></i>down (ends at its reported resume, as long as its reported downtime)<i class="snap"></i>snapshot instant</div>`,
    `<h2>Running jobs</h2><div id="running-jobs">${running}</div>`,
    `<h2>Downtime per stack (last ${input.downtimeBackups} backups of each guest)</h2><div id="charts" class="charts">${chartsSection(input.histories, input.downtimeBackups)}</div>`,
    `<h2>Recent jobs</h2><div id="recent-jobs">${recent}</div>`,
    `<script>${SCRIPT}</script></body></html>`,
  ].join("");
}

export function loginPage(message?: string): string {
  return [
    "<!doctype html>",
    `<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Lull · sign in</title><style>${STYLE}</style></head><body>`,
    `<h1>Lull status</h1>`,
    message ? `<p class="error">${esc(message)}</p>` : "",
    `<p>The status page needs an operator token (<code>lull-agent token create --operator</code>). It is kept in a cookie for this page only.</p>`,
    `<form method="post" action="/status/login"><input type="password" name="token" autocomplete="off" size="60" placeholder="lull_…" required> <button type="submit">Sign in</button></form>`,
    `</body></html>`,
  ].join("");
}
