// What the agent itself says about a fan-out window, read from its Prometheus listener: how long
// its events took from their `at` to the bus (lull_event_publish_delay_seconds, a histogram: the
// figures are bucket bounds, "at most"), and how late its event loop ran (prom-client's
// nodejs_eventloop_lag_*, which start over at every scrape, so a scrape before the window and one
// after it cover exactly the window).

/** One scrape: the publish-delay buckets (cumulative, by upper bound in seconds) and the loop lag. */
export interface Scrape {
  buckets: Map<number, number>;
  loopLagP99: number;
  loopLagMax: number;
}

export interface AgentSide {
  publishCount: number;
  publishP50Ms: number;
  publishP99Ms: number;
  loopLagP99Ms: number;
  loopLagMaxMs: number;
}

export function parseScrape(text: string): Scrape {
  const buckets = new Map<number, number>();
  let loopLagP99 = NaN;
  let loopLagMax = NaN;
  for (const line of text.split("\n")) {
    const bucket = /^lull_event_publish_delay_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)/.exec(line);
    if (bucket) buckets.set(bucket[1] === "+Inf" ? Infinity : Number(bucket[1]), Number(bucket[2]));
    const lag = /^nodejs_eventloop_lag_(p99|max)_seconds(?:\{[^}]*\})? (\S+)/.exec(line);
    if (lag?.[1] === "p99") loopLagP99 = Number(lag[2]);
    if (lag?.[1] === "max") loopLagMax = Number(lag[2]);
  }
  return { buckets, loopLagP99, loopLagMax };
}

/** The window between two scrapes; the loop lag is the later scrape's (it started over at the earlier). */
export function agentSideOf(before: Scrape, after: Scrape): AgentSide {
  const bounds = [...after.buckets.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => (after.buckets.get(b) ?? 0) - (before.buckets.get(b) ?? 0));
  const total = counts.at(-1) ?? 0;
  const bound = (p: number) => {
    if (total === 0) return NaN;
    const i = counts.findIndex((c) => c >= (p / 100) * total);
    return bounds[i]! * 1000;
  };
  return { publishCount: total, publishP50Ms: bound(50), publishP99Ms: bound(99), loopLagP99Ms: after.loopLagP99 * 1000, loopLagMaxMs: after.loopLagMax * 1000 };
}

export async function scrapeMetrics(address: string): Promise<Scrape> {
  const res = await fetch(`http://${address}/metrics`);
  if (!res.ok) throw new Error(`metrics scrape: HTTP ${res.status}`);
  return parseScrape(await res.text());
}

const ms = (v: number) => (Number.isFinite(v) ? (v === Infinity ? "> 10 s" : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`) : "-");

export const fmtAgentSide = (a: AgentSide) => `p50 ≤ ${ms(a.publishP50Ms)} p99 ≤ ${ms(a.publishP99Ms)} (${a.publishCount} events), loop lag p99 ${ms(a.loopLagP99Ms)} max ${ms(a.loopLagMaxMs)}`;
