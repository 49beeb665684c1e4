// Where the built entry points live, resolved from this file (test/dist/support/paths.js), so the
// harness works from any working directory.
import { fileURLToPath } from "node:url";
import { join } from "node:path";

/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

export const ENTRY_POINTS = {
  /** `lull-agent`: `node agent/dist/main.js --config FILE [--listen ADDR]`. */
  agent: join(REPO_ROOT, "agent/dist/main.js"),
  /** `lull-controller`: `node controller/dist/main.js --config FILE`. */
  controller: join(REPO_ROOT, "controller/dist/main.js"),
  /** `lullctl`. */
  lullctl: join(REPO_ROOT, "lullctl/dist/main.js"),
  /** The demo app and its start/stop/status script. */
  demoApp: join(REPO_ROOT, "test/dist/demo/app.js"),
  demoAppCtl: join(REPO_ROOT, "test/dist/demo/app-ctl.js"),
  /** The demo's app-level verification check (a `command` check: LULL_REPLICA names the replica). */
  demoVerifyCheck: join(REPO_ROOT, "test/dist/demo/verify-check.js"),
} as const;
