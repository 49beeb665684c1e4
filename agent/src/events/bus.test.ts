// The event bus delivers to the subscriptions that match, found through its guest index: a
// subscription of another guest is never called, filters on job and group run still apply, and
// subscribing or unsubscribing during a delivery is safe.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { Consistency, EventKind, Phase, SnapshotMode, StackState, type Event } from "@lull/proto";
import { silentLogger } from "@lull/shared";
import { EventBus } from "./bus.js";

let seq = 0;
function event(guestId: string, jobId = "j1", groupRunId?: string): Event {
  seq += 1;
  return {
    seq, at: new Date(), jobId, guestId, kind: EventKind.EVENT_KIND_NOTE, phase: Phase.PHASE_UNSPECIFIED, mode: SnapshotMode.SNAPSHOT_MODE_UNSPECIFIED,
    consistency: Consistency.CONSISTENCY_UNSPECIFIED, snapshotAt: undefined, bytesDone: 0, bytesTotal: 0, stack: "", stackState: StackState.STACK_STATE_UNSPECIFIED,
    downtimeMs: 0, errorCode: "", message: "", ...(groupRunId ? { groupRunId } : {}),
  };
}

describe("event bus", () => {
  it("delivers each event to every-guest subscriptions and to its own guest's, with job and group filters applied", () => {
    const bus = new EventBus(silentLogger());
    const got: Record<string, number[]> = { all: [], a: [], b: [], aJob2: [], run: [] };
    bus.subscribe({}, (e) => got.all!.push(e.seq));
    bus.subscribe({ guestId: "a" }, (e) => got.a!.push(e.seq));
    bus.subscribe({ guestId: "b" }, (e) => got.b!.push(e.seq));
    bus.subscribe({ guestId: "a", jobId: "j2" }, (e) => got.aJob2!.push(e.seq));
    bus.subscribe({ groupRunId: "r1" }, (e) => got.run!.push(e.seq));
    const events = [event("a"), event("b"), event("a", "j2"), event("c", "j3", "r1"), event("", "", "r1")];
    bus.publish(events);
    const s = events.map((e) => e.seq);
    assert.deepEqual(got.all, s);
    assert.deepEqual(got.a, [s[0], s[2]]);
    assert.deepEqual(got.b, [s[1]]);
    assert.deepEqual(got.aJob2, [s[2]]);
    assert.deepEqual(got.run, [s[3], s[4]]);
    assert.equal(bus.size, 5);
  });

  it("forStack: of STACK events only that stack's, and no PROGRESS; every other kind passes", () => {
    const bus = new EventBus(silentLogger());
    const got: number[] = [];
    bus.subscribe({ guestId: "a", forStack: "web" }, (e) => got.push(e.seq));
    const kinds = [
      { ...event("a"), kind: EventKind.EVENT_KIND_STACK, stack: "web" },
      { ...event("a"), kind: EventKind.EVENT_KIND_STACK, stack: "db" },
      { ...event("a"), kind: EventKind.EVENT_KIND_PROGRESS },
      { ...event("a"), kind: EventKind.EVENT_KIND_PHASE },
      { ...event("a"), kind: EventKind.EVENT_KIND_NOTE },
      { ...event("b"), kind: EventKind.EVENT_KIND_STACK, stack: "web" },
    ];
    bus.publish(kinds);
    assert.deepEqual(got, [kinds[0]!.seq, kinds[3]!.seq, kinds[4]!.seq]);
  });

  it("hands every listener the same object (encoded once by the transport)", () => {
    const bus = new EventBus(silentLogger());
    const seen: Event[] = [];
    for (let i = 0; i < 3; i++) bus.subscribe({ guestId: "a" }, (e) => seen.push(e));
    bus.subscribe({}, (e) => seen.push(e));
    const e = event("a");
    bus.publish([e]);
    assert.equal(seen.length, 4);
    assert.ok(seen.every((x) => x === e));
  });

  it("unsubscribing (twice, or during a delivery) and a throwing listener leave the others alone", () => {
    const bus = new EventBus(silentLogger());
    const got: number[] = [];
    let offSecond: () => void = () => undefined;
    const offFirst = bus.subscribe({ guestId: "a" }, () => {
      offSecond();
      throw new Error("listener bug");
    });
    offSecond = bus.subscribe({ guestId: "a" }, (e) => got.push(e.seq));
    const first = event("a");
    bus.publish([first]);
    assert.deepEqual(got, [first.seq], "the event being delivered still reaches it");
    bus.publish([event("a")]);
    assert.deepEqual(got, [first.seq], "later ones do not");
    offFirst();
    offFirst();
    assert.equal(bus.size, 0);
    bus.publish([event("a")]);
  });
});
