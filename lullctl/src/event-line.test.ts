import assert from "node:assert/strict";
import { test } from "node:test";
import { Event, EventKind, Phase } from "@lull/proto";
import { eventLine } from "./render.js";

const at = new Date("2026-11-22T10:00:00Z");

test("an event line names its guest and job, a group run's own event the run, a node-wide note the node", () => {
  const job = Event.fromPartial({ seq: 7, at, guestId: "101", jobId: "j-1", kind: EventKind.EVENT_KIND_PHASE, phase: Phase.PHASE_DONE });
  assert.match(eventLine(job), /^#7  .+  101  j-1  /);
  const group = Event.fromPartial({ seq: 8, at, groupRunId: "gr-1", kind: EventKind.EVENT_KIND_NOTE, message: "cancelling" });
  assert.match(eventLine(group), /^#8  .+  group  gr-1  /);
  const pruned = Event.fromPartial({ seq: 9, at, kind: EventKind.EVENT_KIND_NOTE, errorCode: "LULL_E_EVENTS_PRUNED", message: "events up to #9 were pruned" });
  assert.match(eventLine(pruned), /^#9  .+  node  -  /);
});
