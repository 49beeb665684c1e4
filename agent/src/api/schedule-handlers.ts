// ListSchedules: validation and the answer, from the schedule engine's status and tick records.
import type { ListSchedulesRequest, ListSchedulesResponse, ScheduleTick } from "@lull/proto";
import { LullError } from "@lull/shared";
import type { ScheduleEngine } from "../schedules/engine.js";
import type { TickRecord } from "../schedules/store.js";

export interface ScheduleHandlers {
  listSchedules(req: ListSchedulesRequest): ListSchedulesResponse;
}

const date = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms));

function tick(r: TickRecord): ScheduleTick {
  return {
    tickAt: new Date(r.tickAt),
    outcome: r.outcome,
    reason: r.reason,
    node: r.node,
    startedAt: date(r.startedAt),
    endedAt: date(r.endedAt),
    runRef: r.runRef,
  };
}

/** `engine()` is undefined when the agent has no schedules (or before they started). */
export function createScheduleHandlers(engine: () => ScheduleEngine | undefined): ScheduleHandlers {
  return {
    listSchedules(req) {
      const wanted = req.scheduleId ?? "";
      const n = req.ticks ?? 0;
      if (!Number.isInteger(n) || n < 0 || n > 1000) throw new LullError("LULL_E_INVALID_ARGUMENT", `ticks must be 0..1000 (got ${n})`);
      const limit = n === 0 ? 10 : n;
      const e = engine();
      const all = e?.status() ?? [];
      if (wanted !== "" && !all.some((s) => s.id === wanted)) {
        throw new LullError(
          "LULL_E_INVALID_ARGUMENT",
          `schedule_id ${JSON.stringify(wanted.slice(0, 64))} is not configured (schedules: ${all.map((s) => s.id).join(", ") || "none"}); see schedules.list in the agent's config`,
        );
      }
      return {
        schedules: all
          .filter((s) => wanted === "" || s.id === wanted)
          .map((s) => ({
            id: s.id,
            action: s.action,
            schedule: s.schedule,
            timeZone: s.timeZone,
            scope: s.scope,
            catchUp: s.catchUp,
            lastRun: s.lastRun ? tick(s.lastRun) : undefined,
            nextRunAt: date(s.nextRunAt),
            running: s.running,
            recent: e!.recent(s.id, limit).map(tick),
          })),
      };
    },
  };
}
