// The retention decision for restore points: a pure function of a guest's points, its keep
// options and its recent history. Same semantics as Proxmox Backup Server's prune
// (pbs-datastore/src/prune.rs), written anew here:
//
// - points are taken newest first (by snapshot time, else creation time);
// - each option in turn (last, hourly, daily, weekly, monthly, yearly) keeps the newest point of
//   each of its N newest periods; a period that an earlier option already kept a point in counts
//   for this option too but keeps nothing more; periods are local time, the week is the ISO week
//   (`%G/%V`: its year may differ from the calendar year);
// - protected points are kept and never count towards any option;
// - with no option above 0, everything is kept.
//
// Lull adds two rules none of the peers has, applied after the options:
// - the newest point that passed verification for a stack is kept, whatever the options say, so
//   the only good copy of a stack is never pruned;
// - when the guest's newest run failed, nothing is removed: a failing backup leaves the old points
//   in place until a run succeeds again.
// Points made without Lull (foreign vzdump archives) are listed and kept; Lull prunes only its own.

export interface KeepOptions {
  keepLast?: number | undefined;
  keepHourly?: number | undefined;
  keepDaily?: number | undefined;
  keepWeekly?: number | undefined;
  keepMonthly?: number | undefined;
  keepYearly?: number | undefined;
}

export interface PrunePoint {
  id: string;
  /** The point's time: when its copy was taken (or when its job ended, for modes without a snapshot). */
  at: Date;
  protected: boolean;
  /** Made without Lull (a vzdump archive found in the storage). */
  foreign: boolean;
  /** Stacks for which this point passed app-level verification. */
  verifiedStacks: readonly string[];
}

export interface PruneInput {
  points: readonly PrunePoint[];
  keep: KeepOptions;
  /** The guest's newest backup run ended failed (or cancelled): remove nothing. */
  lastRunFailed: boolean;
}

export type PruneAction = "keep" | "remove";

export interface PruneDecision {
  id: string;
  at: Date;
  action: PruneAction;
  /** Why, in words an operator reads (`keep-daily 2026/12/01`, `protected`, `newest verified point of stack db`). */
  reasons: string[];
}

type Selector = (at: Date) => string;

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** ISO 8601 week-numbering year and week of a local date (`%G/%V`). */
export function isoWeekKey(at: Date): string {
  // The Thursday of the date's week decides its year (ISO 8601).
  const day = new Date(at.getFullYear(), at.getMonth(), at.getDate());
  const weekday = (day.getDay() + 6) % 7; // Monday 0 … Sunday 6
  day.setDate(day.getDate() - weekday + 3);
  const year = day.getFullYear();
  const firstThursday = new Date(year, 0, 4);
  const firstWeekday = (firstThursday.getDay() + 6) % 7;
  firstThursday.setDate(firstThursday.getDate() - firstWeekday + 3);
  const week = 1 + Math.round((day.getTime() - firstThursday.getTime()) / (7 * 24 * 3600 * 1000));
  return `${year}/${pad(week)}`;
}

const OPTIONS: ReadonlyArray<{ key: keyof KeepOptions; name: string; select: Selector }> = [
  { key: "keepLast", name: "keep-last", select: (at) => String(at.getTime()) },
  { key: "keepHourly", name: "keep-hourly", select: (at) => `${at.getFullYear()}/${pad(at.getMonth() + 1)}/${pad(at.getDate())}/${pad(at.getHours())}` },
  { key: "keepDaily", name: "keep-daily", select: (at) => `${at.getFullYear()}/${pad(at.getMonth() + 1)}/${pad(at.getDate())}` },
  { key: "keepWeekly", name: "keep-weekly", select: isoWeekKey },
  { key: "keepMonthly", name: "keep-monthly", select: (at) => `${at.getFullYear()}/${pad(at.getMonth() + 1)}` },
  { key: "keepYearly", name: "keep-yearly", select: (at) => String(at.getFullYear()) },
];

/** True when at least one option keeps something (PBS's `keeps_something`). */
export function keepsSomething(keep: KeepOptions): boolean {
  return OPTIONS.some((o) => (keep[o.key] ?? 0) > 0);
}

/** Newest first; equal times by id, so the order (and the decision) never depends on the input's order. */
function newestFirst(points: readonly PrunePoint[]): PrunePoint[] {
  return [...points].sort((a, b) => b.at.getTime() - a.at.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/** Decides, for each point of one guest, keep or remove, with the reasons. Newest first. */
export function decideRetention(input: PruneInput): PruneDecision[] {
  const list = newestFirst(input.points);
  const mark = new Map<string, "keep" | "remove">();
  const reasons = new Map<string, string[]>(list.map((p) => [p.id, []]));
  const why = (id: string, reason: string) => reasons.get(id)!.push(reason);
  // Foreign points are outside Lull's retention: marked first so no option counts them.
  const own = list.filter((p) => !p.foreign);

  if (keepsSomething(input.keep)) {
    for (const option of OPTIONS) {
      const count = input.keep[option.key];
      if (count === undefined) continue;
      const already = new Set<string>();
      for (const p of own) if (mark.get(p.id) === "keep") already.add(option.select(p.at));
      const included = new Set<string>();
      for (const p of own) {
        if (mark.has(p.id) || p.protected) continue;
        const period = option.select(p.at);
        if (already.has(period)) continue;
        if (!included.has(period)) {
          if (included.size >= count) break;
          included.add(period);
          mark.set(p.id, "keep");
          why(p.id, option.key === "keepLast" ? `${option.name} ${included.size}/${count}` : `${option.name} ${period}`);
        } else {
          mark.set(p.id, "remove");
          why(p.id, `${option.name}: a newer point of ${period} is kept`);
        }
      }
    }
  }

  const decisions: PruneDecision[] = list.map((p) => {
    let action: PruneAction;
    if (p.foreign) {
      action = "keep";
      why(p.id, "made without Lull: not pruned by Lull");
    } else if (p.protected) {
      action = "keep";
      why(p.id, "protected");
    } else if (!keepsSomething(input.keep)) {
      action = "keep";
      why(p.id, "no keep option is set: everything is kept");
    } else {
      action = mark.get(p.id) === "keep" ? "keep" : "remove";
      if (action === "remove" && reasons.get(p.id)!.length === 0) why(p.id, "outside every keep option");
    }
    return { id: p.id, at: p.at, action, reasons: reasons.get(p.id)! };
  });

  // Lull's rule 1: the newest verified point of each stack stays.
  const byId = new Map(decisions.map((d) => [d.id, d]));
  const seenStacks = new Set<string>();
  for (const p of own) {
    for (const stack of p.verifiedStacks) {
      if (seenStacks.has(stack)) continue;
      seenStacks.add(stack);
      const d = byId.get(p.id)!;
      if (d.action === "remove") {
        d.action = "keep";
        d.reasons.push(`newest verified point of stack ${stack}`);
      } else {
        d.reasons.push(`also the newest verified point of stack ${stack}`);
      }
    }
  }

  // Lull's rule 2: after a failed run, nothing goes.
  if (input.lastRunFailed) {
    for (const d of decisions) {
      if (d.action === "remove") {
        d.action = "keep";
        d.reasons.push("the guest's last run failed: nothing is pruned until a run succeeds");
      }
    }
  }
  return decisions;
}
