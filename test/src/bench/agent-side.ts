// What the agent itself says about a fan-out window, read from its Prometheus listener: how long
// its events took from their `at` to the bus (lull_event_publish_delay_seconds), and, per delivery,
// until the agent handed them to a watcher's stream (lull_event_handoff_delay_seconds; both
// histograms: the figures are bucket bounds, "at most"), and how late its event loop ran (prom-client's
// nodejs_eventloop_lag_*, which start over at every scrape, so a scrape before the window and one
// after it cover exactly the window).

/** One scrape: the publish- and hand-off-delay buckets (cumulative, by upper bound in seconds) and the loop lag. */
export interface Scrape {
  publish: Map<number, number>;
  handoff: Map<number, number>;
  loopLagP99: number;
  loopLagMax: number;
}

export interface AgentSide {
  publishCount: number;
  publishP50Ms: number;
  publishP99Ms: number;
  handoffCount: number;
  handoffP50Ms: number;
  handoffP99Ms: number;
  loopLagP99Ms: number;
  loopLagMaxMs: number;
}

export function parseScrape(text: string): Scrape {
  const publish = new Map<number, number>();
  const handoff = new Map<number, number>();
  let loopLagP99 = NaN;
  let loopLagMax = NaN;
  for (const line of text.split("\n")) {
    const bucket = /^lull_event_(publish|handoff)_delay_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)/.exec(line);
    if (bucket) (bucket[1] === "publish" ? publish : handoff).set(bucket[2] === "+Inf" ? Infinity : Number(bucket[2]), Number(bucket[3]));
    const lag = /^nodejs_eventloop_lag_(p99|max)_seconds(?:\{[^}]*\})? (\S+)/.exec(line);
    if (lag?.[1] === "p99") loopLagP99 = Number(lag[2]);
    if (lag?.[1] === "max") loopLagMax = Number(lag[2]);
  }
  return { publish, handoff, loopLagP99, loopLagMax };
}

/** The window between two scrapes; the loop lag is the later scrape's (it started over at the earlier). */
/** Count and p50/p99 (bucket bounds, ms) of a histogram's observations between two scrapes. */
function window(before: Map<number, number>, after: Map<number, number>): { count: number; p50: number; p99: number } {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => (after.get(b) ?? 0) - (before.get(b) ?? 0));
  const total = counts.at(-1) ?? 0;
  const bound = (p: number) => {
    if (total === 0) return NaN;
    const i = counts.findIndex((c) => c >= (p / 100) * total);
    return bounds[i]! * 1000;
  };
  return { count: total, p50: bound(50), p99: bound(99) };
}

/** The window between two scrapes; the loop lag is the later scrape's (it started over at the earlier). */
export function agentSideOf(before: Scrape, after: Scrape): AgentSide {
  const published = window(before.publish, after.publish);
  const handedOff = window(before.handoff, after.handoff);
  return {
    publishCount: published.count,
    publishP50Ms: published.p50,
    publishP99Ms: published.p99,
    handoffCount: handedOff.count,
    handoffP50Ms: handedOff.p50,
    handoffP99Ms: handedOff.p99,
    loopLagP99Ms: after.loopLagP99 * 1000,
    loopLagMaxMs: after.loopLagMax * 1000,
  };
}

export async function scrapeMetrics(address: string): Promise<Scrape> {
  const res = await fetch(`http://${address}/metrics`);
  if (!res.ok) throw new Error(`metrics scrape: HTTP ${res.status}`);
  return parseScrape(await res.text());
}

const ms = (v: number) => (Number.isFinite(v) ? (v === Infinity ? "> 10 s" : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`) : "-");

export const fmtAgentSide = (a: AgentSide) =>
  `p50 ≤ ${ms(a.publishP50Ms)} p99 ≤ ${ms(a.publishP99Ms)} (${a.publishCount} events), at→hand-off to a stream p50 ≤ ${ms(a.handoffP50Ms)} p99 ≤ ${ms(a.handoffP99Ms)} (${a.handoffCount} deliveries), loop lag p99 ${ms(a.loopLagP99Ms)} max ${ms(a.loopLagMaxMs)}`;
