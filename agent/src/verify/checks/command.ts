// The built-in `command` check: the user's argv (no shell) with the replica in its environment —
// LULL_REPLICA (the replica's directory; the volumes are under `$LULL_REPLICA/root/<volume>`),
// LULL_REPLICA_ROOT, LULL_POINT_ID, LULL_GUEST_ID, LULL_STACK, and LULL_REPLICA_VMID for a
// vzdump point's scratch guest (a container's root filesystem is `$LULL_REPLICA_ROOT/rootfs`). Exit 0 passes; its output's last
// lines are the evidence.
import type { CommandRunner } from "@lull/shared";
import type { CommandCheck } from "../config.js";
import { REPLICA_ENV, type Replica } from "../replica.js";
import type { CheckOutcome } from "./outcome.js";

const tail = (text: string) => text.trim().split("\n").slice(-20).join("\n").slice(-4_000);

export async function runCommandCheck(
  replica: Replica,
  stack: string,
  check: CommandCheck,
  deps: { runner: CommandRunner; signal: AbortSignal; timeoutMs: number },
): Promise<CheckOutcome> {
  const started = Date.now();
  const [file, ...args] = check.argv as [string, ...string[]];
  const r = await deps.runner.run(file, args, {
    env: {
      [REPLICA_ENV]: replica.dir,
      LULL_REPLICA_ROOT: replica.root,
      LULL_POINT_ID: replica.state.pointId,
      LULL_GUEST_ID: replica.state.guestId,
      LULL_STACK: stack,
      // A vzdump point's scratch guest (a started VM is reached through it, e.g. `qm guest exec`).
      ...(replica.state.vmid !== undefined ? { LULL_REPLICA_VMID: String(replica.state.vmid) } : {}),
    },
    signal: deps.signal,
    timeoutMs: deps.timeoutMs,
    reject: false,
  });
  const evidence = { exitCode: r.exitCode, stdout: tail(r.stdout), stderr: tail(r.stderr) };
  const durationMs = Date.now() - started;
  if (r.exitCode === 0) return { ok: true, reason: "", durationMs, evidence };
  return { ok: false, reason: `${check.argv.join(" ")} exited ${r.exitCode}${r.stderr.trim() ? `: ${r.stderr.trim().split("\n").at(-1)}` : ""}`, durationMs, evidence };
}
