// How a group run ends, from its member jobs once every one of them has ended: `done` only if
// every member is done; `cancelled` when an operator's cancel is the recorded cause and every
// member that is not done ended cancelled; otherwise `failed`, naming each member that is not done
// with its phase and code, and keeping the first cause the coordinator recorded (or the first
// member's own).
import { Phase, type Job } from "@lull/proto";
import { phaseName } from "@lull/shared";
import type { GroupRunRecord } from "./group-run.js";
import { CANCELLED_CODE, type GroupEvent } from "./machine.js";

export const MEMBER_FAILED_CODE = "LULL_E_GROUP_MEMBER_FAILED";
/** Longest member message quoted in the run's message. */
const QUOTE_MAX = 300;

/** A member's message as the run quotes it: at most QUOTE_MAX characters. */
export const quote = (text: string) => (text.length > QUOTE_MAX ? `${text.slice(0, QUOTE_MAX - 1)}…` : text);

function memberLine(job: Job): string {
  const where = job.failedIn !== Phase.PHASE_UNSPECIFIED ? ` in ${phaseName(job.failedIn)}` : "";
  const head = `${job.guestId} ${phaseName(job.phase)}${where}`;
  if (!job.errorCode) return head;
  // A member stopped because of another one only repeats that cause: its code says so.
  if (job.errorCode === MEMBER_FAILED_CODE || !job.errorMessage) return `${head} (${job.errorCode})`;
  return `${head} (${job.errorCode}: ${quote(job.errorMessage)})`;
}

/** The member whose own failure is the cause (not one the group stopped), if any. */
export function rootCause(members: readonly Job[]): Job | undefined {
  const ended = members.filter((m) => m.phase === Phase.PHASE_FAILED || m.phase === Phase.PHASE_CANCELLED);
  return ended.find((m) => m.errorCode !== MEMBER_FAILED_CODE) ?? ended[0];
}

/** The `end` event of a run whose members have all ended. */
export function groupOutcome(run: GroupRunRecord, members: readonly Job[]): Extract<GroupEvent, { type: "end" }> {
  const byGuest = new Map(members.map((m) => [m.guestId, m]));
  const missing = run.guestIds.filter((g) => !byGuest.has(g));
  const failed = members.filter((m) => m.phase !== Phase.PHASE_DONE);
  if (failed.length === 0 && missing.length === 0) return { type: "end", failedGuests: [], code: "", message: "", cancelled: false };
  const failedGuests = [...failed.map((m) => m.guestId), ...missing].sort();
  const notDone = `${failedGuests.length} of ${run.guestIds.length} members did not finish`;
  if (run.errorCode === CANCELLED_CODE && missing.length === 0 && failed.every((m) => m.phase === Phase.PHASE_CANCELLED)) {
    // Each member's own message repeats the run's reason: the phase it was cancelled in says the rest.
    const lines = failed.map((m) => `${m.guestId} cancelled in ${phaseName(m.failedIn)}`);
    const message = `cancelled in ${phaseName(run.failedIn)}: ${quote(run.errorMessage)}; ${notDone}: ${lines.join("; ")}`;
    return { type: "end", failedGuests, code: CANCELLED_CODE, message, cancelled: true };
  }
  const root = rootCause(members);
  const code = run.errorCode || root?.errorCode || "LULL_E_INTERNAL";
  const lines = [...failed.map(memberLine), ...missing.map((g) => `${g} has no member job`)];
  // The cause is spelled out unless it is a member's own failure, already in that member's line.
  const causeShown = root !== undefined && root.errorCode === run.errorCode && root.errorCode !== MEMBER_FAILED_CODE;
  const cause = run.errorMessage && !causeShown ? `; cause: ${run.errorMessage}` : "";
  return { type: "end", failedGuests, code, message: `${notDone}: ${lines.join("; ")}${cause}`, cancelled: false };
}
