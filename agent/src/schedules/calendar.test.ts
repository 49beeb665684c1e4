// Table test of the calendar events against the examples of Proxmox's documentation (pve-docs
// "Schedule Format", the systemd.time(7) subset proxmox-time implements), and DST forward/back in
// two time zones.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { LullError } from "@lull/shared";
import { checkTimeZone, nextTick, parseCalendarEvent, ticksBetween } from "./calendar.js";

const iso = (ms: number | undefined) => (ms === undefined ? "none" : new Date(ms).toISOString().replace(".000", ""));
const next = (event: string, zone: string, after: string) => iso(nextTick(parseCalendarEvent(event), zone, Date.parse(after)));

describe("calendar events: Proxmox's documented examples (UTC)", () => {
  // [event, after, the next three ticks]
  const table: [string, string, string[]][] = [
    ["mon,tue,wed,thu,fri", "2026-03-04T12:00:00Z", ["2026-03-05T00:00:00Z", "2026-03-06T00:00:00Z", "2026-03-09T00:00:00Z"]],
    ["mon..fri", "2026-03-04T12:00:00Z", ["2026-03-05T00:00:00Z", "2026-03-06T00:00:00Z", "2026-03-09T00:00:00Z"]],
    ["mon..fri 02:00", "2026-03-06T02:00:00Z", ["2026-03-09T02:00:00Z", "2026-03-10T02:00:00Z", "2026-03-11T02:00:00Z"]],
    ["sat 03:30", "2026-03-04T12:00:00Z", ["2026-03-07T03:30:00Z", "2026-03-14T03:30:00Z", "2026-03-21T03:30:00Z"]],
    ["sat,sun", "2026-03-04T12:00:00Z", ["2026-03-07T00:00:00Z", "2026-03-08T00:00:00Z", "2026-03-14T00:00:00Z"]],
    ["sun 12:00", "2026-03-04T12:00:00Z", ["2026-03-08T12:00:00Z", "2026-03-15T12:00:00Z", "2026-03-22T12:00:00Z"]],
    ["*/15", "2026-03-04T12:07:00Z", ["2026-03-04T12:15:00Z", "2026-03-04T12:30:00Z", "2026-03-04T12:45:00Z"]],
    ["0/15", "2026-03-04T12:07:00Z", ["2026-03-04T12:15:00Z", "2026-03-04T12:30:00Z", "2026-03-04T12:45:00Z"]],
    ["*/5", "2026-03-04T12:59:00Z", ["2026-03-04T13:00:00Z", "2026-03-04T13:05:00Z", "2026-03-04T13:10:00Z"]],
    ["12:05", "2026-03-04T12:05:00Z", ["2026-03-05T12:05:00Z", "2026-03-06T12:05:00Z", "2026-03-07T12:05:00Z"]],
    ["12,14,16,18,20,22:5", "2026-03-04T12:05:00Z", ["2026-03-04T14:05:00Z", "2026-03-04T16:05:00Z", "2026-03-04T18:05:00Z"]],
    ["12..22:5", "2026-03-04T21:00:00Z", ["2026-03-04T21:05:00Z", "2026-03-04T22:05:00Z", "2026-03-05T12:05:00Z"]],
    ["12/2:5", "2026-03-04T12:05:00Z", ["2026-03-04T14:05:00Z", "2026-03-04T16:05:00Z", "2026-03-04T18:05:00Z"]],
    ["*/2:05", "2026-03-04T01:00:00Z", ["2026-03-04T02:05:00Z", "2026-03-04T04:05:00Z", "2026-03-04T06:05:00Z"]],
    ["mon..wed 30/10", "2026-03-04T23:50:00Z", ["2026-03-09T00:30:00Z", "2026-03-09T00:40:00Z", "2026-03-09T00:50:00Z"]],
    ["fri 12..13:5/20", "2026-03-04T00:00:00Z", ["2026-03-06T12:05:00Z", "2026-03-06T12:25:00Z", "2026-03-06T12:45:00Z"]],
    ["sat 10:00", "2026-03-07T10:00:00Z", ["2026-03-14T10:00:00Z", "2026-03-21T10:00:00Z", "2026-03-28T10:00:00Z"]],
    ["hourly", "2026-03-04T12:00:00Z", ["2026-03-04T13:00:00Z", "2026-03-04T14:00:00Z", "2026-03-04T15:00:00Z"]],
    ["daily", "2026-03-04T12:00:00Z", ["2026-03-05T00:00:00Z", "2026-03-06T00:00:00Z", "2026-03-07T00:00:00Z"]],
    ["weekly", "2026-03-04T12:00:00Z", ["2026-03-09T00:00:00Z", "2026-03-16T00:00:00Z", "2026-03-23T00:00:00Z"]],
    ["monthly", "2026-03-04T12:00:00Z", ["2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"]],
    ["yearly", "2026-03-04T12:00:00Z", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "2029-01-01T00:00:00Z"]],
    ["quarterly", "2026-03-04T12:00:00Z", ["2026-04-01T00:00:00Z", "2026-07-01T00:00:00Z", "2026-10-01T00:00:00Z"]],
    ["semiannually", "2026-03-04T12:00:00Z", ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z"]],
    ["minutely", "2026-03-04T12:00:30Z", ["2026-03-04T12:01:00Z", "2026-03-04T12:02:00Z", "2026-03-04T12:03:00Z"]],
    ["*-05 02:00", "2026-03-04T12:00:00Z", ["2026-03-05T02:00:00Z", "2026-04-05T02:00:00Z", "2026-05-05T02:00:00Z"]],
    ["2027-02-28 06:00", "2026-03-04T12:00:00Z", ["2027-02-28T06:00:00Z", "none", "none"]],
    ["12:00:30", "2026-03-04T12:00:00Z", ["2026-03-04T12:00:30Z", "2026-03-05T12:00:30Z", "2026-03-06T12:00:30Z"]],
    ["02-29", "2026-03-04T12:00:00Z", ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"]],
  ];
  for (const [event, after, expected] of table) {
    it(`${event} after ${after}`, () => {
      const ev = parseCalendarEvent(event);
      const got: string[] = [];
      let t: number | undefined = Date.parse(after);
      for (let i = 0; i < 3; i++) {
        t = t === undefined ? undefined : nextTick(ev, "UTC", t);
        got.push(iso(t));
      }
      assert.deepEqual(got, expected);
    });
  }
});

describe("calendar events: explicit time zone and DST", () => {
  it("Europe/Berlin spring forward: 02:30 does not exist on 2026-03-29 and runs at 03:00 CEST, once", () => {
    assert.equal(next("02:30", "Europe/Berlin", "2026-03-28T02:00:00Z"), "2026-03-29T01:00:00Z");
    assert.equal(next("02:30", "Europe/Berlin", "2026-03-29T01:00:00Z"), "2026-03-30T00:30:00Z");
    // A schedule outside the gap is not moved.
    assert.equal(next("03:30", "Europe/Berlin", "2026-03-28T12:00:00Z"), "2026-03-29T01:30:00Z");
  });
  it("Europe/Berlin fall back: 02:30 occurs twice on 2026-10-25 and runs once, at its first occurrence", () => {
    const ticks = ticksBetween(parseCalendarEvent("02:30"), "Europe/Berlin", Date.parse("2026-10-24T12:00:00Z"), Date.parse("2026-10-26T12:00:00Z"));
    assert.deepEqual(ticks.map(iso), ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]);
    // Every 15 minutes (any hour): an interval, so each real quarter hour of the 25-hour day runs,
    // the repeated 02:xx included.
    const q = ticksBetween(parseCalendarEvent("*/15"), "Europe/Berlin", Date.parse("2026-10-24T23:50:00Z"), Date.parse("2026-10-25T01:20:00Z"));
    assert.deepEqual(q.map(iso), ["2026-10-25T00:00:00Z", "2026-10-25T00:15:00Z", "2026-10-25T00:30:00Z", "2026-10-25T00:45:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:15:00Z"]);
  });
  it("America/New_York spring forward and fall back (daily at 02:15 and at 01:30)", () => {
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:15 runs at 03:00 EDT = 07:00Z.
    assert.equal(next("02:15", "America/New_York", "2026-03-07T12:00:00Z"), "2026-03-08T07:00:00Z");
    assert.equal(next("02:15", "America/New_York", "2026-03-08T07:00:00Z"), "2026-03-09T06:15:00Z");
    // 2026-11-01: 01:30 EDT (05:30Z) then 01:30 EST (06:30Z) — one run.
    const ticks = ticksBetween(parseCalendarEvent("01:30"), "America/New_York", Date.parse("2026-10-31T12:00:00Z"), Date.parse("2026-11-02T12:00:00Z"));
    assert.deepEqual(ticks.map(iso), ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]);
    // mon..fri 02:00 in New York keeps its local time across the change (07:00Z then 06:00Z... then EDT).
    assert.equal(next("mon..fri 02:00", "America/New_York", "2026-03-06T12:00:00Z"), "2026-03-09T06:00:00Z");
  });
  it("hourly across both changes keeps one tick per real hour (23 and 25 on the change days)", () => {
    const ev = parseCalendarEvent("hourly");
    const spring = ticksBetween(ev, "Europe/Berlin", Date.parse("2026-03-28T23:00:00Z") - 1, Date.parse("2026-03-29T22:00:00Z") - 1);
    assert.equal(spring.length, 23);
    const fall = ticksBetween(ev, "Europe/Berlin", Date.parse("2026-10-24T22:00:00Z") - 1, Date.parse("2026-10-25T23:00:00Z") - 1);
    // Every hour is an interval: the repeated 02:00 runs in both of its real hours.
    assert.equal(fall.length, 25);
  });
});

describe("calendar events: bad input is refused naming the problem", () => {
  for (const [event, words] of [
    ["", "empty"],
    ["mon..fry 02:00", "'fry' is not a weekday"],
    ["fri..mon", "runs backwards"],
    ["25:00", "hour 25 is outside 0..23"],
    ["02:61", "minute 61 is outside 0..59"],
    ["*/0", "step 0 is outside"],
    ["02:00 mon", "weekdays come first"],
    ["13-01", "month 13 is outside 1..12"],
    ["1:2:3:4", "too many ':'"],
  ] as const) {
    it(`'${event}'`, () => {
      assert.throws(() => parseCalendarEvent(event), (err: unknown) => err instanceof LullError && err.code === "LULL_E_CONFIG_INVALID" && err.message.includes(words));
    });
  }
  it("an unknown time zone", () => {
    assert.throws(() => checkTimeZone("Europe/Atlantis"), /time zone 'Europe\/Atlantis' is not an IANA time zone/);
    checkTimeZone("Europe/Berlin");
  });
});
