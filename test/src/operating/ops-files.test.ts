// The Grafana dashboard and the alert rules in ops/ name only metrics the agent (with its
// verification, schedule and lease sources attached) or the controller export.
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { AgentMetrics, agentConfigSchema } from "@lull/agent";
import { ControllerMetrics } from "@lull/controller";
import { systemClock } from "@lull/shared";
import { REPO_ROOT } from "../support/paths.js";

async function exported(): Promise<Map<string, string>> {
  const agent = new AgentMetrics({ node: "n" });
  agent.attachSources({ guests: [], markers: () => [], verifications: () => [], schedules: () => [], scheduledGuests: () => [] });
  const controller = new ControllerMetrics({ guestId: "g", stack: "s", markers: { path: "/x", read: () => ({ kind: "none" }), write() {}, clear() {} }, reachable: () => true, clock: systemClock });
  const all = [...(await agent.registry.getMetricsAsJSON()), ...(await controller.registry.getMetricsAsJSON())];
  return new Map(all.map((m) => [m.name, String(m.type)]));
}

function referenced(text: string): string[] {
  return [...new Set([...text.matchAll(/\blull_[a-z_]+/g)].map((m) => m[0]))];
}

describe("ops/ dashboard and alert rules", () => {
  it("the dashboard is valid JSON and every query names an exported metric (histograms by _bucket/_sum/_count)", async () => {
    const metrics = await exported();
    const text = readFileSync(join(REPO_ROOT, "ops/grafana-dashboard.json"), "utf8");
    const dash = JSON.parse(text) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    assert.ok(dash.panels.length >= 8);
    for (const name of referenced(text)) {
      const base = name.replace(/_(bucket|sum|count)$/, "");
      const type = metrics.get(name) ?? metrics.get(base);
      assert.ok(type, `dashboard names ${name}, which nothing exports`);
      if (name !== base && !metrics.has(name)) assert.equal(type, "histogram", `${name}: only histograms have ${name.slice(base.length)}`);
    }
  });

  it("the alert rules name exported metrics, and cover the alerts asked for", async () => {
    const metrics = await exported();
    const text = readFileSync(join(REPO_ROOT, "ops/alert-rules.yaml"), "utf8");
    for (const name of referenced(text)) {
      const base = name.replace(/_(bucket|sum|count)$/, "");
      assert.ok(metrics.has(name) || metrics.has(base), `alert rules name ${name}, which nothing exports`);
    }
    for (const alert of ["LullBackupTooOld", "LullVerificationStale", "LullStackDowntimeOverBudget", "LullBackupFailed", "LullScheduleMissed", "LullLeaseFlapping"]) {
      assert.match(text, new RegExp(`- alert: ${alert}\\n`), alert);
    }
    assert.match(text, /le="60"/, "the downtime budget is a bucket boundary");
  });

  it("LullVerificationStale's threshold is the default of verify.staleAfterDays (the agent's verification-stale notification)", () => {
    const text = readFileSync(join(REPO_ROOT, "ops/alert-rules.yaml"), "utf8");
    const days = /time\(\) - lull_verify_last_success_timestamp_seconds > (\d+) \* 86400/.exec(text)?.[1];
    const config = agentConfigSchema.parse({ dataDir: "/tmp/d", archiveDir: "/tmp/a", stagingDir: "/tmp/s", guests: [] });
    assert.equal(Number(days), config.verify.staleAfterDays);
  });
});
