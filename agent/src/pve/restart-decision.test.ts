// The decision to start a guest vzdump shut down in stop mode and left stopped: start only when
// every condition holds, and for each condition that fails, leave it (settled) or wait (open).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decideRestart, type RestartAction, type RestartFacts } from "./restart-decision.js";

/** vzdump killed mid-archive: lock: backup still set and cleared by the cleanup, guest stopped. */
const crashed: RestartFacts = {
  shutdown: {},
  vzdumpRunning: false,
  guest: { lockBefore: "backup", lockCleared: true, status: "stopped" },
};

function facts(patch: {
  shutdown?: RestartFacts["shutdown"];
  vzdumpRunning?: boolean;
  signalledByAgent?: boolean;
  guest?: Partial<NonNullable<RestartFacts["guest"]>> | null;
}): RestartFacts {
  return {
    shutdown: { ...crashed.shutdown, ...patch.shutdown },
    vzdumpRunning: patch.vzdumpRunning ?? crashed.vzdumpRunning,
    ...(patch.signalledByAgent !== undefined ? { signalledByAgent: patch.signalledByAgent } : {}),
    guest: patch.guest === null ? undefined : { ...crashed.guest!, ...patch.guest },
  };
}

const cases: Array<[string, RestartFacts, RestartAction, RegExp]> = [
  ["killed between shutdown and restart: lock: backup cleared, stopped", crashed, "start", /ended before starting it again/],
  [
    "killed in its own cleanup after unlocking (pre-restart came), stopped",
    facts({ shutdown: { restartBegunAt: 5 }, guest: { lockBefore: undefined, lockCleared: false } }),
    "start",
    /in its own cleanup/,
  ],
  ["vzdump started it again itself (post-restart came)", facts({ shutdown: { restartBegunAt: 5, restartedAt: 6 } }), "leave", /post-restart/],
  ["a vzdump runs now", facts({ vzdumpRunning: true }), "wait", /a vzdump runs/],
  ["the guest is gone from this node", facts({ guest: null }), "leave", /no longer on this node/],
  ["its lock: backup could not be cleared", facts({ guest: { lockCleared: false } }), "wait", /could not be cleared/],
  ["another lock (an operator's migrate)", facts({ guest: { lockBefore: "migrate", lockCleared: false } }), "leave", /locked \(migrate\)/],
  [
    "unlocked by someone else, then started and stopped again: stopped, no lock, no pre-restart",
    facts({ guest: { lockBefore: undefined, lockCleared: false } }),
    "leave",
    /removed since the shutdown, not by vzdump/,
  ],
  [
    "stopped by this agent's TERM in vzdump's clean-up (the pre-restart hook killed before it reported): unlocked, stopped",
    facts({ signalledByAgent: true, guest: { lockBefore: undefined, lockCleared: false } }),
    "start",
    /stopped by this agent, its clean-up unlocked it/,
  ],
  ["stopped by this agent, but started again meanwhile", facts({ signalledByAgent: true, guest: { lockBefore: undefined, lockCleared: false, status: "running" } }), "leave", /running now/],
  ["an operator started it (--skiplock): running now", facts({ guest: { status: "running" } }), "leave", /running now/],
  ["paused now", facts({ guest: { status: "paused" } }), "leave", /paused now/],
  ["unlocked by vzdump and running again", facts({ shutdown: { restartBegunAt: 5 }, guest: { lockBefore: undefined, lockCleared: false, status: "running" } }), "leave", /running now/],
  // vzdump ended inside stop_vm (no archive line after the shutdown): the guest may still power off.
  [
    "stopped by this agent inside qm shutdown: still running within the watch",
    { ...facts({ shutdown: { shutdownAt: 1_000 }, signalledByAgent: true, guest: { lockBefore: undefined, lockCleared: false, status: "running" } }), now: 61_000, shutdownWatchMs: 600_000 },
    "wait",
    /may still power off; watched until 1970-01-01T00:10:01.000Z/,
  ],
  [
    "killed with vzdump inside lxc-stop: lock cleared, still running within the watch",
    { ...facts({ shutdown: { shutdownAt: 1_000 }, guest: { status: "running" } }), now: 2_000, shutdownWatchMs: 600_000 },
    "wait",
    /may still power off/,
  ],
  [
    "still running when the watch is over",
    { ...facts({ shutdown: { shutdownAt: 1_000, releasedAt: 2_000 }, guest: { lockBefore: undefined, lockCleared: false, status: "running" } }), now: 601_000, shutdownWatchMs: 600_000 },
    "leave",
    /running now/,
  ],
  [
    "stop_vm had returned (archive line): a running guest was started by someone, not a shutdown in flight",
    { ...facts({ shutdown: { shutdownAt: 1_000, stopReturnedAt: 3_000 }, signalledByAgent: true, guest: { lockBefore: undefined, lockCleared: false, status: "running" } }), now: 4_000, shutdownWatchMs: 600_000 },
    "leave",
    /running now/,
  ],
  [
    "watched, then down: the lock's release was recorded earlier, so the missing lock is not an operator's",
    { ...facts({ shutdown: { shutdownAt: 1_000, releasedAt: 2_000 }, guest: { lockBefore: undefined, lockCleared: false } }), now: 30_000, shutdownWatchMs: 600_000 },
    "start",
    /ended before the shutdown finished; it powered off afterwards/,
  ],
  ["a watch of 0 never waits", { ...facts({ shutdown: { shutdownAt: 1_000 }, signalledByAgent: true, guest: { lockBefore: undefined, lockCleared: false, status: "running" } }), now: 1_000, shutdownWatchMs: 0 }, "leave", /running now/],
];

describe("decideRestart", () => {
  for (const [name, input, action, reason] of cases) {
    it(`${name} → ${action}`, () => {
      const decision = decideRestart(input);
      assert.equal(decision.action, action);
      assert.match(decision.reason, reason);
    });
  }

  it("starts only when every condition holds (each single change of the crashed case stops it)", () => {
    assert.equal(decideRestart(crashed).action, "start");
    const changes: RestartFacts[] = [
      facts({ shutdown: { restartedAt: 1 } }),
      facts({ vzdumpRunning: true }),
      facts({ guest: null }),
      facts({ guest: { lockCleared: false } }),
      facts({ guest: { lockBefore: "snapshot" } }),
      facts({ guest: { lockBefore: undefined, lockCleared: false } }),
      facts({ guest: { status: "running" } }),
    ];
    for (const f of changes) assert.notEqual(decideRestart(f).action, "start", JSON.stringify(f));
  });
});
