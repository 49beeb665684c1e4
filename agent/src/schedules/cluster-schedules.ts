// Cluster-wide schedules: `<clusterRoot>/lull/schedules.json` on pmxcfs, one file every node reads
// (as pve-ha-manager keeps its resources in `/etc/pve/ha/` and pvescheduler its jobs in
// `/etc/pve/jobs.cfg`). Its schedules have the agent config's shape (`{ "list": [ … ] }`, the
// same keys as `schedules.list`); `scope` says, as there, whether every node runs the schedule for
// its own guests (`node`) or one node per tick under the lease (`cluster`).
//
// The file serves every node, so it may name guests and groups another node has: each node takes
// the guests it has (a schedule naming none of them is not active here, and says so) and the
// groups it knows. Everything else is checked as strictly as the local config, and an id that is
// also a local schedule's is an error naming both places. A file that is not there is no
// schedule; a file that is wrong is LULL_E_CONFIG_INVALID naming the file and the key.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { LullError, z } from "@lull/shared";
import { scheduleConfigIssues, scheduleSchema, type ScheduleConfig, type SchedulesConfig } from "./config.js";

export const CLUSTER_SCHEDULES_FILE = "lull/schedules.json";

const fileSchema = z.strictObject({ list: z.array(scheduleSchema).default([]) });

export interface LocalView {
  /** This node's guests and configured groups. */
  guestIds: readonly string[];
  groupIds: readonly string[];
  /** The local config's schedules (ids must not repeat in the file) and lease timing. */
  local: SchedulesConfig;
  verifyFreshMs?: number | undefined;
}

export interface ClusterSchedules {
  file: string;
  /** The file's schedules active on this node (guests narrowed to this node's). */
  schedules: ScheduleConfig[];
  /** Schedules of the file not active here, with why. */
  inactive: Array<{ id: string; why: string }>;
}

/** Reads and checks the file; undefined when there is none. */
export async function readClusterSchedules(clusterRoot: string, view: LocalView, now = Date.now()): Promise<ClusterSchedules | undefined> {
  const file = join(clusterRoot, CLUSTER_SCHEDULES_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new LullError("LULL_E_CONFIG_INVALID", `${file} cannot be read: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new LullError("LULL_E_CONFIG_INVALID", `${file} is not JSON: ${(err as Error).message}`);
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    throw new LullError("LULL_E_CONFIG_INVALID", `${file}: ${first.path.join(".") || "(top level)"}: ${first.message}`);
  }
  const schedules: ScheduleConfig[] = [];
  const inactive: ClusterSchedules["inactive"] = [];
  const indexOf = new Map<ScheduleConfig, number>();
  parsed.data.list.forEach((s, i) => {
    const clash = view.local.list.find((l) => l.id === s.id);
    if (clash) throw new LullError("LULL_E_CONFIG_INVALID", `${file}: list.${i}.id: schedule ${s.id} is also in the agent's config (schedules.list); give one of them another id`);
    if (s.guests.length > 0) {
      const here = s.guests.filter((g) => view.guestIds.includes(g));
      if (here.length === 0) {
        inactive.push({ id: s.id, why: `none of its guests (${s.guests.join(", ")}) is on this node` });
        return;
      }
      const narrowed = { ...s, guests: here };
      indexOf.set(narrowed, i);
      schedules.push(narrowed);
      return;
    }
    if (s.group !== undefined && !view.groupIds.includes(s.group)) {
      inactive.push({ id: s.id, why: `group ${s.group} is not configured on this node` });
      return;
    }
    indexOf.set(s, i);
    schedules.push(s);
  });
  const issues = scheduleConfigIssues({ ...view.local, list: schedules }, view.guestIds, view.groupIds, now, view.verifyFreshMs).filter((issue) => issue.path[1] === "list");
  if (issues.length > 0) {
    const issue = issues[0]!;
    const at = schedules[issue.path[2] as number];
    const index = at ? indexOf.get(at) : undefined;
    throw new LullError("LULL_E_CONFIG_INVALID", `${file}: list.${index ?? "?"}.${String(issue.path[3] ?? "")}: ${issue.message.replace(/schedules\.list\[\d+\]/g, `list.${index ?? "?"}`)}`);
  }
  return { file, schedules, inactive };
}
