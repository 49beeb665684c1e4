// Scrapes a running agent's metrics listener after real backups (native engine, dir driver, a real
// tar.zst archive) and checks names, types, labels and values in the text exposition format.
import { strict as assert } from "node:assert";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ListVerificationsRequest, Phase, QuiescePolicy } from "@lull/proto";
import { agentApiOf, createAgentClient, createLogger } from "@lull/shared";
import { startAgent, type RunningAgent } from "../agent.js";
import { testApi, testConfig, waitForEnd, waitForJob, type TestAgent } from "../testing/agent-harness.js";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the text exposition format: TYPE lines and samples. */
function parse(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1] as string, type[2] as string);
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

function one(samples: Sample[], name: string, labels: Record<string, string>): number {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(hits.length, 1, `exactly one ${name}${JSON.stringify(labels)}; got ${JSON.stringify(hits)}`);
  return (hits[0] as Sample).value;
}

describe("metrics listener", () => {
  const running: Array<() => Promise<void>> = [];
  after(async () => {
    for (const stop of running) await stop();
  });

  it("is off by default: no listener, no address", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lull-metrics-off-"));
    const agent = await startAgent({ config: testConfig(dir), log: createLogger({ name: "t", level: "silent" }) });
    running.push(() => agent.stop());
    assert.equal(agent.metricsAddress, undefined);
  });

  it("after a real backup: outcomes by code, downtime histogram, phases, archive bytes, last success", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lull-metrics-"));
    const config = testConfig(dir, { config: { metrics: { address: "127.0.0.1:0" } } });
    writeFileSync(join(dir, "app", "records.txt"), "x".repeat(256 * 1024));
    const log = createLogger({ name: "t", level: "silent" });
    const agent: RunningAgent = await startAgent({ config, log });
    const client = createAgentClient({ address: `unix://${agent.socketPath}` });
    running.push(async () => {
      client.close();
      await agent.stop();
    });
    const api = testApi(client);
    const t = { api } as unknown as TestAgent;
    assert.match(agent.metricsAddress ?? "", /^127\.0\.0\.1:\d+$/);

    await api.registerStack({ guestId: "demo", stack: "app", controllerId: "ctl-app" });
    // A watcher following the guest live (a controller's stream: it holds the stack's lease): each event it is sent is one hand-off.
    const seen: number[] = [];
    const stream = client.watchEvents({ guestId: "demo", jobId: "", afterSeq: (await api.getAgentInfo()).lastEventSeq, holdLease: { stack: "app", controllerId: "ctl-app", leaseTtlMs: 0 } });
    stream.on("data", (e: { seq: number }) => void seen.push(e.seq));
    const watcher = new Promise<void>((resolve) => {
      stream.on("error", () => resolve());
      stream.on("end", () => resolve());
    });
    // Headers come once the stream follows the bus: every later event is sent live.
    await new Promise((resolve) => stream.once("metadata", resolve));
    const before = Date.now() / 1000;
    const { job } = await api.startBackup({ guestId: "demo", quiesceTimeoutMs: 10_000 });
    const id = job!.id;
    await waitForJob(t, "demo", id, (j) => j.phase === Phase.PHASE_QUIESCING);
    await api.acknowledgeQuiesce({ guestId: "demo", jobId: id, stack: "app", stoppedAt: new Date() });
    await waitForJob(t, "demo", id, (j) => j.phase !== Phase.PHASE_QUIESCING && j.phase !== Phase.PHASE_SNAPSHOTTING, 10_000);
    await api.reportResumed({ guestId: "demo", jobId: id, stack: "app", downtimeMs: 1234, resumedAt: new Date(), early: true });
    const done = await waitForEnd(t, "demo", id, 20_000);
    assert.equal(done.phase, Phase.PHASE_DONE, done.errorMessage);

    // A second backup that fails: the stack refuses under the fail policy.
    const second = await api.startBackup({ guestId: "demo", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, quiesceTimeoutMs: 10_000, idempotencyKey: "second" });
    await waitForJob(t, "demo", second.job!.id, (j) => j.phase === Phase.PHASE_QUIESCING);
    await api.refuseQuiesce({ guestId: "demo", jobId: second.job!.id, stack: "app", reason: "migration running" });
    assert.equal((await waitForEnd(t, "demo", second.job!.id)).phase, Phase.PHASE_FAILED);

    const lastSeq = (await api.getAgentInfo()).lastEventSeq;
    for (let i = 0; i < 100 && seen.at(-1) !== lastSeq; i++) await new Promise((r) => setTimeout(r, 20));
    const whileHeld = parse(await (await fetch(`http://${agent.metricsAddress}/metrics`)).text());
    assert.equal(whileHeld.types.get("lull_stack_leases_held_by_streams"), "gauge");
    assert.equal(one(whileHeld.samples, "lull_stack_leases_held_by_streams", {}), 1, "the open stream holds the lease of app");
    stream.cancel();
    await watcher;
    assert.ok(seen.length > 5, `the watcher saw the backups' events (${seen.length})`);

    const res = await fetch(`http://${agent.metricsAddress}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const { types, samples } = parse(await res.text());

    assert.equal(types.get("lull_backup_jobs_total"), "counter");
    assert.equal(one(samples, "lull_backup_jobs_total", { guest: "demo", outcome: "done", code: "none", node: "test-node" }), 1);
    assert.equal(one(samples, "lull_backup_jobs_total", { guest: "demo", outcome: "failed", code: "LULL_E_QUIESCE_REFUSED" }), 1);

    assert.equal(types.get("lull_backup_last_success_timestamp_seconds"), "gauge");
    const last = one(samples, "lull_backup_last_success_timestamp_seconds", { guest: "demo", stack: "app" });
    assert.ok(Math.abs(last - done.finishedAt!.getTime() / 1000) < 0.002, `last success ${last} is the job's finish ${done.finishedAt!.toISOString()}`);
    assert.ok(last >= before);

    assert.equal(types.get("lull_backup_stack_downtime_seconds"), "histogram");
    const dl = { guest: "demo", stack: "app", resumed: "early" };
    assert.equal(one(samples, "lull_backup_stack_downtime_seconds_count", dl), 1);
    assert.equal(one(samples, "lull_backup_stack_downtime_seconds_sum", dl), 1.234, "millisecond resolution");
    assert.equal(one(samples, "lull_backup_stack_downtime_seconds_bucket", { ...dl, le: "1" }), 0);
    assert.equal(one(samples, "lull_backup_stack_downtime_seconds_bucket", { ...dl, le: "2.5" }), 1);

    assert.equal(types.get("lull_backup_phase_duration_seconds"), "histogram");
    assert.equal(one(samples, "lull_backup_phase_duration_seconds_count", { guest: "demo", phase: "total" }), 2);
    assert.equal(one(samples, "lull_backup_phase_duration_seconds_count", { guest: "demo", phase: "archive" }), 1);
    const archiveSum = one(samples, "lull_backup_phase_duration_seconds_sum", { guest: "demo", phase: "archive" });
    assert.equal(archiveSum, done.archiveMs / 1000);
    assert.equal(one(samples, "lull_backup_barrier_wait_seconds_count", { guest: "demo" }), 2, "both jobs waited at a barrier");

    assert.equal(one(samples, "lull_stack_leases_held_by_streams", {}), 0, "none once the stream ended");
    assert.equal(types.get("lull_event_handoff_delay_seconds"), "histogram");
    assert.equal(one(samples, "lull_event_handoff_delay_seconds_count", {}), seen.length, "one hand-off per event sent live to the one watcher");
    assert.equal(one(samples, "lull_event_handoff_delay_seconds_bucket", { le: "+Inf" }), seen.length);

    assert.equal(types.get("lull_backup_archive_size_bytes"), "gauge");
    assert.equal(one(samples, "lull_backup_archive_size_bytes", { guest: "demo" }), done.archiveBytes);
    assert.ok(done.archiveBytes > 0);
    assert.equal(one(samples, "lull_backup_archived_bytes_total", { guest: "demo" }), done.bytesDone || done.bytesTotal);
    const tput = one(samples, "lull_backup_archive_throughput_bytes_per_second", { guest: "demo" });
    assert.ok(Math.abs(tput - (done.bytesDone || done.bytesTotal) / (done.archiveMs / 1000)) < 1e-6 * tput);

    // The listener serves nothing else and changes nothing.
    assert.equal((await fetch(`http://${agent.metricsAddress}/`)).status, 404);
    assert.equal((await fetch(`http://${agent.metricsAddress}/metrics`, { method: "POST" })).status, 405);
    assert.ok(samples.some((s) => s.name === "process_cpu_seconds_total"), "process metrics are there");
  });

  it("verification and schedules: last verified point per stack, last run by result, schedule interval and ticks", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lull-metrics-verify-"));
    const config = testConfig(dir, {
      config: {
        metrics: { address: "127.0.0.1:0" },
        verify: { checks: [{ guest: "demo", stack: "app", check: { type: "command", argv: ["sh", "-c", 'test -f "$LULL_REPLICA_ROOT/data/records.txt"'] } }] },
        schedules: { list: [{ id: "nightly", action: "backup", schedule: "daily", timeZone: "UTC", guests: ["demo"] }] },
      },
    });
    writeFileSync(join(dir, "app", "records.txt"), "x".repeat(64 * 1024));
    const log = createLogger({ name: "t", level: "silent" });
    const agent = await startAgent({ config, log });
    const client = createAgentClient({ address: `unix://${agent.socketPath}` });
    running.push(async () => {
      client.close();
      await agent.stop();
    });
    const api = testApi(client);
    const verifyApi = agentApiOf(client);
    const { job } = await api.startBackup({ guestId: "demo" });
    assert.equal((await waitForEnd({ api } as unknown as TestAgent, "demo", job!.id, 20_000)).phase, Phase.PHASE_DONE);
    // The agent verifies each new point by itself.
    let listed = await verifyApi.listVerifications(ListVerificationsRequest.fromPartial({ guestId: "demo" }));
    for (let i = 0; i < 200 && !listed.markers.some((m) => m.stack === "app"); i++) {
      await new Promise((r) => setTimeout(r, 100));
      listed = await verifyApi.listVerifications(ListVerificationsRequest.fromPartial({ guestId: "demo" }));
    }
    const marker = listed.markers.find((m) => m.stack === "app");
    assert.ok(marker, "the new point was verified");
    const run = listed.verifications.find((v) => v.phase === "passed")!;

    const { types, samples } = parse(await (await fetch(`http://${agent.metricsAddress}/metrics`)).text());
    assert.equal(types.get("lull_verify_last_success_timestamp_seconds"), "gauge");
    assert.equal(one(samples, "lull_verify_last_success_timestamp_seconds", { guest: "demo", stack: "app" }), marker.verifiedAt!.getTime() / 1000);
    assert.equal(one(samples, "lull_verify_last_run_timestamp_seconds", { guest: "demo", result: "passed" }), run.endedAt!.getTime() / 1000);
    assert.equal(samples.filter((s) => s.name === "lull_verify_last_run_timestamp_seconds" && s.labels.result === "failed").length, 0);
    assert.equal(one(samples, "lull_schedule_interval_seconds", { schedule: "nightly", action: "backup", scope: "node" }), 86_400);
    assert.equal(one(samples, "lull_backup_expected_interval_seconds", { guest: "demo" }), 86_400);
    assert.equal(one(samples, "lull_schedule_ticks", { schedule: "nightly", outcome: "done" }), 0);
    assert.equal(one(samples, "lull_schedule_ticks", { schedule: "nightly", outcome: "missed" }), 0);
    assert.equal(samples.filter((s) => s.name === "lull_lease_held").length, 0, "no cluster-wide schedule: no lease series");
  });

  it("seeds the last-success gauge from the store at start", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lull-metrics-seed-"));
    const log = createLogger({ name: "t", level: "silent" });
    const first = await startAgent({ config: testConfig(dir), log });
    const client = createAgentClient({ address: `unix://${first.socketPath}` });
    const api = testApi(client);
    const { job } = await api.startBackup({ guestId: "demo" });
    const done = await waitForEnd({ api } as unknown as TestAgent, "demo", job!.id, 20_000);
    client.close();
    await first.stop();
    const again = await startAgent({ config: testConfig(dir, { config: { metrics: { address: "127.0.0.1:0" } } }), log });
    running.push(() => again.stop());
    const { samples } = parse(await (await fetch(`http://${again.metricsAddress}/metrics`)).text());
    assert.equal(one(samples, "lull_backup_last_success_timestamp_seconds", { guest: "demo", stack: "" }), done.finishedAt!.getTime() / 1000);
    assert.equal(samples.filter((s) => s.name === "lull_backup_jobs_total").length, 0, "counters start at this start: none made up");
  });
});
