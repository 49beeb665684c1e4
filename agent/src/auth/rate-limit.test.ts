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
