// The pictures of the status page, as SVG strings: a job's timeline (phases on one track, each
// stack's down interval on a track of its own, the snapshot instant as a marker) and a stack's
// downtime over its last backups. Pure functions of the view model; every text is escaped.
//
// The time scale is linear and written on the <svg> (`data-t0`, `data-px-per-ms`), so a reader
// (the browser test, a script) can turn any rect's x and width back into instants and durations.
import { Phase, StackState } from "@lull/proto";
import { phaseName } from "@lull/shared";
import type { DownInterval, JobView, StackHistory } from "./model.js";

export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);
}

/** Milliseconds as `850 ms`, `12.3 s`, `4 min 05 s`. */
export function formatMs(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1_000);
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

const STACK_STATES: Partial<Record<StackState, string>> = {
  [StackState.STACK_STATE_PENDING]: "pending",
  [StackState.STACK_STATE_QUIESCED]: "quiesced",
  [StackState.STACK_STATE_REFUSED]: "refused",
  [StackState.STACK_STATE_TIMED_OUT]: "timed out",
  [StackState.STACK_STATE_RESUMED]: "resumed",
  [StackState.STACK_STATE_NOT_ANSWERED]: "not answered",
  [StackState.STACK_STATE_LEFT_STOPPED]: "left stopped",
};

export function stackStateName(state: StackState): string {
  return STACK_STATES[state] ?? "unknown";
}

export const TIMELINE = { width: 860, label: 130, right: 16, track: 22, gap: 8, top: 8, axis: 26 } as const;

function px(n: number): string {
  return (Math.round(n * 1000) / 1000).toString();
}

/** A job's timeline. */
export function timelineSvg(view: JobView): string {
  const { width, label, right, track, gap, top, axis } = TIMELINE;
  const plot = width - label - right;
  const span = Math.max(1, view.end - view.start);
  const scale = plot / span; // px per ms
  const x = (t: number): number => label + (t - view.start) * scale;
  const tracks = 1 + view.stacks.length;
  const height = top + tracks * (track + gap) + axis;
  const parts: string[] = [];
  const id = esc(view.job.id);
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"` +
      ` data-job="${id}" data-t0="${view.start}" data-px-per-ms="${scale}" data-plot-x="${label}">`,
    `<title>job ${id}: timeline</title>`,
  );
  // Track 0: the phases.
  const y0 = top;
  parts.push(`<text class="track-label" x="4" y="${y0 + track / 2 + 4}">phases</text>`);
  for (const seg of view.phases) {
    const name = seg.phase === Phase.PHASE_UNSPECIFIED ? "unknown" : phaseName(seg.phase);
    const w = Math.max(1, (seg.end - seg.start) * scale);
    parts.push(
      `<rect class="phase phase-${esc(name)}" data-phase="${esc(name)}" data-start="${seg.start}" data-end="${seg.end}"` +
        ` x="${px(x(seg.start))}" y="${y0}" width="${px(w)}" height="${track}"><title>${esc(name)}: ${formatMs(seg.end - seg.start)}</title></rect>`,
    );
    if (w > 8 * name.length) parts.push(`<text class="phase-label" x="${px(x(seg.start) + 4)}" y="${y0 + track / 2 + 4}">${esc(name)}</text>`);
  }
  // One track per stack: its down interval.
  view.stacks.forEach((s: DownInterval, i: number) => {
    const y = top + (i + 1) * (track + gap);
    const stack = esc(s.stack);
    parts.push(`<text class="track-label" x="4" y="${y + track / 2 + 4}">${stack}</text>`);
    parts.push(`<line class="track-base" x1="${label}" x2="${width - right}" y1="${y + track / 2}" y2="${y + track / 2}"/>`);
    if (s.end > s.start) {
      const w = (s.end - s.start) * scale;
      const what = s.downtimeMs !== undefined ? `down ${formatMs(s.downtimeMs)} (${stackStateName(s.state)})` : `down for ${formatMs(s.end - s.start)} so far`;
      parts.push(
        `<rect class="down${s.open ? " open" : ""}" data-stack="${stack}" data-start="${s.start}" data-end="${s.end}"` +
          (s.downtimeMs !== undefined ? ` data-downtime-ms="${s.downtimeMs}"` : "") +
          ` x="${px(x(s.start))}" y="${y + 3}" width="${px(Math.max(w, 0))}" height="${track - 6}"><title>${stack}: ${esc(what)}</title></rect>`,
      );
    } else {
      parts.push(`<text class="stack-note" x="${label + 6}" y="${y + track / 2 + 4}">${esc(stackStateName(s.state))}: not stopped</text>`);
    }
  });
  // The snapshot instant, across every track.
  const bottom = top + tracks * (track + gap) - gap;
  if (view.snapshotAt !== undefined) {
    const sx = px(x(view.snapshotAt));
    parts.push(
      `<line class="snapshot" data-at="${view.snapshotAt}" x1="${sx}" x2="${sx}" y1="${top - 4}" y2="${bottom + 4}"><title>snapshot at ${new Date(view.snapshotAt).toISOString()}</title></line>`,
    );
  }
  // The axis: start, middle and end, relative to the start.
  for (const f of [0, 0.5, 1]) {
    const ax = label + f * plot;
    const anchor = f === 0 ? "start" : f === 1 ? "end" : "middle";
    parts.push(`<text class="axis" x="${px(ax)}" y="${bottom + 20}" text-anchor="${anchor}">+${formatMs(f * span)}</text>`);
  }
  parts.push("</svg>");
  return parts.join("");
}

export const CHART = { width: 420, height: 150, left: 54, right: 10, top: 10, bottom: 24 } as const;

/** A stack's downtime across its guest's last backups: one bar per backup, oldest left. */
export function downtimeChartSvg(history: StackHistory): string {
  const { width, height, left, right, top, bottom } = CHART;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const max = Math.max(1, ...history.points.map((p) => p.downtimeMs));
  const yScale = plotH / max; // px per ms
  const n = Math.max(1, history.points.length);
  const slot = plotW / n;
  const barW = Math.max(2, Math.min(28, slot * 0.7));
  const name = `${esc(history.guestId)}/${esc(history.stack)}`;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="downtime-chart" role="img" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"` +
      ` data-guest="${esc(history.guestId)}" data-stack="${esc(history.stack)}" data-px-per-ms="${yScale}">`,
    `<title>downtime of ${name} across its last ${history.points.length} backups</title>`,
    `<line class="axis-line" x1="${left}" x2="${width - right}" y1="${top + plotH}" y2="${top + plotH}"/>`,
    `<text class="axis" x="${left - 4}" y="${top + 8}" text-anchor="end">${formatMs(max)}</text>`,
    `<text class="axis" x="${left - 4}" y="${top + plotH}" text-anchor="end">0</text>`,
  ];
  history.points.forEach((p, i) => {
    const h = p.downtimeMs * yScale;
    const bx = left + i * slot + (slot - barW) / 2;
    parts.push(
      `<rect class="bar" data-job="${esc(p.jobId)}" data-downtime-ms="${p.downtimeMs}" x="${px(bx)}" y="${px(top + plotH - h)}" width="${px(barW)}" height="${px(h)}">` +
        `<title>${esc(p.jobId)} (${new Date(p.at).toISOString()}): ${formatMs(p.downtimeMs)}</title></rect>`,
    );
  });
  const avg = history.points.reduce((a, p) => a + p.downtimeMs, 0) / n;
  parts.push(`<text class="axis" x="${left}" y="${height - 6}">last ${history.points.length} backups · mean ${formatMs(avg)}</text>`, "</svg>");
  return parts.join("");
}
