// The crash matrix's faults: a kill -9 of the agent or of controllers at every phase boundary (the
// daemons' failpoints) and at random points, the agent gone for longer than the resume deadline,
// and a run without a fault as the baseline. A seeded generator makes every run reproducible.

/** mulberry32: small, fast, good enough to pick faults; the same seed gives the same run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const AGENT_PHASES = ["queued", "quiescing", "snapshotting", "snapshotted", "archiving", "done"] as const;
export const CONTROLLER_POINTS = ["after-marker", "after-stop", "before-resume"] as const;

export type Fault =
  /** The agent pauses right after committing `phase` (each job), then kill -9 and restart. */
  | { kind: "agent-failpoint"; phase: (typeof AGENT_PHASES)[number] }
  /** One controller freezes at `point`, then kill -9 and restart. */
  | { kind: "controller-failpoint"; point: (typeof CONTROLLER_POINTS)[number]; stack: string }
  /** kill -9 the agent `delayMs` after the backups started; restart it. */
  | { kind: "agent-kill"; delayMs: number }
  /** kill -9 one controller `delayMs` after the backups started; restart it `downMs` later. */
  | { kind: "controller-kill"; stack: string; delayMs: number; downMs: number }
  /** kill -9 the agent and every controller at once; restart them all. */
  | { kind: "all-kill"; delayMs: number }
  /** kill -9 the agent while stacks are held stopped and keep it down past the resume deadline. */
  | { kind: "agent-down-past-deadline"; phase: "quiescing" | "snapshotting" }
  | { kind: "none" };

export type FaultKind = Fault["kind"];

const pick = <T>(rng: () => number, items: readonly T[]): T => items[Math.floor(rng() * items.length)] as T;
const between = (rng: () => number, lo: number, hi: number) => Math.round(lo + rng() * (hi - lo));

/**
 * Every fault template once, before random ones, interleaved so that a short run (CI) already
 * mixes agent and controller failpoints with random kills; then random picks.
 */
export function faultFor(iteration: number, rng: () => number, stacks: readonly string[], maxDelayMs: number): Fault {
  const agentAt = (phase: (typeof AGENT_PHASES)[number]) => (): Fault => ({ kind: "agent-failpoint", phase });
  const controllerAt = (point: (typeof CONTROLLER_POINTS)[number]) => (): Fault => ({ kind: "controller-failpoint", point, stack: pick(rng, stacks) });
  const agentKill = (): Fault => ({ kind: "agent-kill", delayMs: between(rng, 0, maxDelayMs) });
  const controllerKill = (): Fault => ({ kind: "controller-kill", stack: pick(rng, stacks), delayMs: between(rng, 0, maxDelayMs), downMs: between(rng, 0, 1_500) });
  const allKill = (): Fault => ({ kind: "all-kill", delayMs: between(rng, 0, maxDelayMs) });
  const fixed: Array<() => Fault> = [
    agentAt("quiescing"),
    controllerAt("after-stop"),
    agentKill,
    agentAt("archiving"),
    controllerAt("before-resume"),
    allKill,
    agentAt("snapshotted"),
    controllerKill,
    controllerAt("after-marker"),
    agentAt("queued"),
    agentAt("snapshotting"),
    agentAt("done"),
    () => ({ kind: "agent-down-past-deadline", phase: pick(rng, ["quiescing", "snapshotting"] as const) }),
    () => ({ kind: "none" }),
  ];
  if (iteration < fixed.length) return fixed[iteration]!();
  // Afterwards: random points are what the fixed boundaries cannot reach, so they weigh more.
  const r = rng();
  if (r < 0.25) return agentKill();
  if (r < 0.45) return controllerKill();
  if (r < 0.6) return allKill();
  if (r < 0.78) return agentAt(pick(rng, AGENT_PHASES))();
  if (r < 0.93) return controllerAt(pick(rng, CONTROLLER_POINTS))();
  if (r < 0.97) return fixed[12]!();
  return { kind: "none" };
}

/** `agent-failpoint:archiving`, `controller-kill:gb/db@812ms`, ... */
export function describeFault(f: Fault): string {
  switch (f.kind) {
    case "agent-failpoint":
      return `agent-failpoint:${f.phase}`;
    case "controller-failpoint":
      return `controller-failpoint:${f.point}:${f.stack}`;
    case "agent-kill":
      return `agent-kill@${f.delayMs}ms`;
    case "controller-kill":
      return `controller-kill:${f.stack}@${f.delayMs}ms+${f.downMs}ms`;
    case "all-kill":
      return `all-kill@${f.delayMs}ms`;
    case "agent-down-past-deadline":
      return `agent-down-past-deadline:${f.phase}`;
    case "none":
      return "none";
  }
}

/** The fault's family, for the tally (`agent-failpoint:archiving`, `agent-kill`, ...). */
export function faultFamily(f: Fault): string {
  if (f.kind === "agent-failpoint") return `agent-failpoint:${f.phase}`;
  if (f.kind === "controller-failpoint") return `controller-failpoint:${f.point}`;
  return f.kind;
}
