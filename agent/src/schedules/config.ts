// The `schedules` section of the agent's config: what runs when, on this node or once per
// cluster under the pmxcfs lease, and the lease's timing. All timing windows are checked together
// here, at load: a broken rule names both keys.
import { z } from "@lull/shared";
import { checkTimeZone, nextTick, parseCalendarEvent } from "./calendar.js";
import { checkLeaseTiming, DEFAULT_LEASE_TIMING, type LeaseTiming } from "./lease.js";

const ms = (max: number) => z.number().int().min(1).max(max);

export const scheduleSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,47}$/, { message: "must be [a-z0-9-], at most 48 characters" }),
  /** backup: a job per guest or a group run; verify and prune: the verification and prune entry points. */
  action: z.enum(["backup", "verify", "prune"]),
  /** Proxmox calendar event (`mon..fri 02:00`, `*\/15`, `sat 03:30`, `daily`). */
  schedule: z.string().min(1),
  /** IANA time zone the calendar event is read in. Required: a schedule never depends on the host's TZ. */
  timeZone: z.string().min(1),
  /** `node`: every node runs its own; `cluster`: once per cluster per tick, under the pmxcfs lease. */
  scope: z.enum(["node", "cluster"]).default("node"),
  /** After the agent was down: `once` runs the newest missed tick on start, `skip` records them all missed. */
  catchUp: z.enum(["once", "skip"]).default("skip"),
  guests: z.array(z.string().min(1)).default([]),
  group: z.string().min(1).optional(),
  /** Every guest of this node. */
  all: z.boolean().default(false),
  /** The run is cancelled after this long (never longer than until the next tick). */
  maxRunMs: ms(7 * 24 * 3_600_000).optional(),
  /** verify: a point verified less than this ago is fresh (needs a cadence at most this long). */
  freshnessMs: ms(366 * 24 * 3_600_000).optional(),
});

export type ScheduleConfig = z.output<typeof scheduleSchema>;

export const schedulesConfigSchema = z
  .strictObject({
    /** Where pmxcfs is mounted. */
    clusterRoot: z.string().startsWith("/").default("/etc/pve"),
    lease: z
      .strictObject({
        lockTimeoutMs: ms(600_000).default(DEFAULT_LEASE_TIMING.lockTimeoutMs),
        renewEveryMs: ms(600_000).default(DEFAULT_LEASE_TIMING.renewEveryMs),
        renewTimeoutMs: ms(600_000).default(DEFAULT_LEASE_TIMING.renewTimeoutMs),
        validForMs: ms(600_000).default(DEFAULT_LEASE_TIMING.validForMs),
        stopWithinMs: ms(600_000).default(DEFAULT_LEASE_TIMING.stopWithinMs),
        chunkMs: ms(600_000).default(DEFAULT_LEASE_TIMING.chunkMs),
        acquireTimeoutMs: ms(600_000).default(DEFAULT_LEASE_TIMING.acquireTimeoutMs),
        retryEveryMs: ms(600_000).default(DEFAULT_LEASE_TIMING.retryEveryMs),
        releaseTimeoutMs: ms(600_000).default(DEFAULT_LEASE_TIMING.releaseTimeoutMs),
      })
      .prefault({}),
    list: z.array(scheduleSchema).default([]),
  })
  .prefault({});

export type SchedulesConfig = z.output<typeof schedulesConfigSchema>;

export interface ConfigIssue {
  path: (string | number)[];
  message: string;
}

/** The shortest gap between two of the next `sample` ticks (the cadence), or undefined. */
export function cadenceMs(schedule: string, timeZone: string, from: number, sample = 16): number | undefined {
  const ev = parseCalendarEvent(schedule);
  let prev = nextTick(ev, timeZone, from);
  let best: number | undefined;
  for (let i = 0; i < sample && prev !== undefined; i++) {
    const t = nextTick(ev, timeZone, prev);
    if (t === undefined) break;
    best = best === undefined ? t - prev : Math.min(best, t - prev);
    prev = t;
  }
  return best;
}

/** Every problem of the schedules section, each naming its keys (zod superRefine of the agent config). */
export function scheduleConfigIssues(
  cfg: SchedulesConfig,
  guestIds: readonly string[],
  groupIds: readonly string[],
  now = Date.now(),
  /** verify.outdatedAfterDays in ms: a point verified less than this ago is fresh. */
  verifyFreshMs?: number,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  try {
    checkLeaseTiming(cfg.lease as LeaseTiming, "schedules.lease");
  } catch (err) {
    issues.push({ path: ["schedules", "lease"], message: (err as Error).message });
  }
  const ids = new Set<string>();
  cfg.list.forEach((s, i) => {
    const at = (key: string) => ["schedules", "list", i, key];
    const name = `schedules.list[${i}] (${s.id})`;
    if (ids.has(s.id)) issues.push({ path: at("id"), message: `duplicate schedule id ${s.id}` });
    ids.add(s.id);
    let ok = true;
    try {
      parseCalendarEvent(s.schedule);
    } catch (err) {
      ok = false;
      issues.push({ path: at("schedule"), message: (err as Error).message });
    }
    try {
      checkTimeZone(s.timeZone);
    } catch (err) {
      ok = false;
      issues.push({ path: at("timeZone"), message: (err as Error).message });
    }
    const targets = (s.guests.length > 0 ? 1 : 0) + (s.group !== undefined ? 1 : 0) + (s.all ? 1 : 0);
    if (targets !== 1) {
      issues.push({ path: at("guests"), message: `${name}: a schedule names exactly one of guests, group or all: true` });
    }
    for (const g of s.guests) if (!guestIds.includes(g)) issues.push({ path: at("guests"), message: `${name}: unknown guest ${g}; add it to guests or remove it here` });
    if (s.group !== undefined && !groupIds.includes(s.group)) issues.push({ path: at("group"), message: `${name}: unknown group ${s.group}` });
    if (s.action === "backup" && s.scope === "cluster" && s.all) {
      issues.push({ path: at("scope"), message: `${name}: 'all: true' means this node's guests; it cannot be scope: cluster (each node backs up its own, as pvescheduler does)` });
    }
    if (s.freshnessMs !== undefined && s.action !== "verify") issues.push({ path: at("freshnessMs"), message: `${name}: freshnessMs belongs to verify schedules` });
    if (!ok) return;
    const cadence = cadenceMs(s.schedule, s.timeZone, now);
    if (cadence === undefined) {
      issues.push({ path: at("schedule"), message: `${name}: '${s.schedule}' has no two ticks within five years` });
      return;
    }
    if (s.freshnessMs !== undefined && s.freshnessMs < cadence) {
      issues.push({
        path: at("freshnessMs"),
        message: `${name}: freshnessMs (${s.freshnessMs} ms) is shorter than the cadence of schedule '${s.schedule}' (${cadence} ms) that refreshes it: points would go stale between runs and verification would move onto the request path; raise freshnessMs or run the schedule more often`,
      });
    }
    if (s.action === "verify" && verifyFreshMs !== undefined && verifyFreshMs < cadence) {
      issues.push({
        path: at("schedule"),
        message: `${name}: verify.outdatedAfterDays (${verifyFreshMs / 86_400_000} days) is shorter than the cadence of schedule '${s.schedule}' (${cadence} ms) that re-verifies: points would count as outdated between runs and verification would move onto the request path; raise verify.outdatedAfterDays or run the schedule more often`,
      });
    }
    if (s.maxRunMs !== undefined && s.maxRunMs > cadence) {
      issues.push({ path: at("maxRunMs"), message: `${name}: maxRunMs (${s.maxRunMs} ms) is longer than the cadence of schedule '${s.schedule}' (${cadence} ms); a run may not outlive its tick` });
    }
  });
  return issues;
}
