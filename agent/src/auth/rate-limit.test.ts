import assert from "node:assert/strict";
import { test } from "node:test";
import { LullError, type Clock } from "@lull/shared";
import type { Principal } from "./principal.js";
import { CallLimiter } from "./rate-limit.js";

function manualClock(): Clock & { advance(ms: number): void } {
  let now = 1_000_000;
  return {
    now: () => now,
    sleep: () => Promise.resolve(),
    advance(ms: number) {
      now += ms;
    },
  } as Clock & { advance(ms: number): void };
}

const limited = (err: unknown) => err instanceof LullError && err.code === "LULL_E_RATE_LIMITED" && err.grpcStatus === 8;
const a: Principal = { kind: "guest", id: "aaaaaaaaaaaa", guestId: "101" };
const b: Principal = { kind: "guest", id: "bbbbbbbbbbbb", guestId: "102" };
const local: Principal = { kind: "operator", id: "local", via: "socket" };

test("a token bucket per principal and method: burst, then refill at the rate", () => {
  const clock = manualClock();
  const limiter = new CallLimiter({ rates: { registerStack: { burst: 3, perSecond: 2 } }, maxStreams: 2 }, clock);
  for (let i = 0; i < 3; i++) limiter.admit("registerStack", a);
  assert.throws(() => limiter.admit("registerStack", a), limited);
  limiter.admit("registerStack", b);
  limiter.admit("getJob", a);
  clock.advance(499);
  assert.throws(() => limiter.admit("registerStack", a), limited);
  clock.advance(1);
  limiter.admit("registerStack", a);
  clock.advance(60_000);
  for (let i = 0; i < 3; i++) limiter.admit("registerStack", a);
  assert.throws(() => limiter.admit("registerStack", a), limited, "the bucket never holds more than its burst");
  for (let i = 0; i < 100; i++) limiter.admit("registerStack", local);
});

test("WatchEventBatches takes its calls from WatchEvents's bucket", () => {
  const limiter = new CallLimiter({ rates: { watchEvents: { burst: 2, perSecond: 1 } }, maxStreams: 10 }, manualClock());
  limiter.admit("watchEvents", a);
  limiter.admit("watchEventBatches", a);
  assert.throws(() => limiter.admit("watchEventBatches", a), limited);
  assert.throws(() => limiter.admit("watchEvents", a), limited);
});

test("open streams are capped per principal and released once", () => {
  const limiter = new CallLimiter({ rates: {}, maxStreams: 2 }, manualClock());
  const r1 = limiter.openStream(a);
  const r2 = limiter.openStream(a);
  assert.throws(() => limiter.openStream(a), limited);
  limiter.openStream(b)();
  r1();
  r1();
  assert.equal(limiter.openStreams(a.id), 1, "a second release of the same stream changes nothing");
  const r3 = limiter.openStream(a);
  assert.throws(() => limiter.openStream(a), limited);
  r2();
  r3();
  assert.equal(limiter.openStreams(a.id), 0);
  for (let i = 0; i < 10; i++) limiter.openStream(local);
});

test("open streams of every credential together are capped by maxStreamsTotal; the local operator is not counted", () => {
  const limiter = new CallLimiter({ rates: {}, maxStreams: 5, maxStreamsTotal: 3 }, manualClock());
  const releaseA = limiter.openStream(a);
  limiter.openStream(a);
  limiter.openStream(b);
  assert.throws(() => limiter.openStream(b), (err: unknown) => limited(err) && /limits\.maxWatchStreamsTotal/.test((err as Error).message));
  limiter.openStream(local);
  assert.equal(limiter.openStreamsTotal, 3);
  releaseA();
  releaseA();
  assert.equal(limiter.openStreamsTotal, 2, "a release counts once");
  limiter.openStream(b);
});

test("the default limits fit a busy node: 50 stacks sharing one guest token renew every 5 s and reconnect at once", async () => {
  const { agentConfigSchema } = await import("../config.js");
  const limits = agentConfigSchema.parse({ dataDir: "/d", archiveDir: "/a", stagingDir: "/s" }).limits;
  const clock = manualClock();
  const limiter = new CallLimiter({ rates: { registerStack: limits.registerStack, watchEvents: limits.watchEvents }, maxStreams: limits.maxWatchStreams }, clock);
  for (let i = 0; i < 50; i++) {
    limiter.admit("watchEvents", a);
    limiter.openStream(a);
  }
  for (let second = 0; second < 60; second++) {
    for (let i = 0; i < 10; i++) limiter.admit("registerStack", a);
    clock.advance(1000);
  }
});
