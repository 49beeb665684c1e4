// The fuzz run: a real lull-agent (TLS, tokens, two dir-driver guests whose volumes hold canary
// files, PATH limited to recording shims) takes N random and malformed requests across every RPC,
// from no token, broken tokens, expired and revoked ones, each guest's, a stack's and an
// operator's — at random, then in floods. Then: is it still up (health SERVING, a real backup
// still works, SIGTERM exits 0), did every answer have an expected status, did any guest token
// get beyond its guest, and did anything from the requests reach a command line or the disk?
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Client } from "@grpc/grpc-js";
import * as proto from "@lull/proto";
import { AgentService, Phase, StartBackupResponse, StartGroupBackupResponse } from "@lull/proto";
import { isTerminal } from "@lull/shared";
import { makeTempDir, removeDir, startAgent, waitFor, type AgentProcess, type ExitStatus } from "../support/index.js";
import { commandProblem, listTree, markedPaths, readCommandLog, treeDiff, writeCommandShims } from "./fuzz-canary.js";
import { credentialClient, healthOf, requestMessageOf, scopeLeak, streamCall, unaryCall, type CallResult, type Credential } from "./fuzz-calls.js";
import { MARKER, Rng, requestBytes, type FuzzWorld } from "./fuzz-requests.js";

export const EXPECTED_STATUSES = ["OK", "INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ALREADY_EXISTS"];

export interface FuzzOptions {
  requests: number;
  seed?: number;
  concurrency?: number;
  keep?: boolean;
  progress?: (done: number, total: number) => void;
}

export interface FuzzReport {
  seed: number;
  requests: number;
  durationMs: number;
  byStatus: Record<string, number>;
  byCredential: Record<string, Record<string, number>>;
  byRpc: Record<string, Record<string, number>>;
  /** Answers outside EXPECTED_STATUSES. */
  unexpected: string[];
  /** Invalid credentials that got anything but UNAUTHENTICATED (or RESOURCE_EXHAUSTED for an oversized message). */
  authFailures: string[];
  /** Guest tokens that reached beyond their guest. */
  scopeLeaks: string[];
  health: string;
  aliveAfterFuzz: boolean;
  finalBackup: string;
  exit: ExitStatus | undefined;
  commands: { total: number; byProgram: Record<string, number>; problems: string[] };
  disk: { sentinel: string[]; marked: string[]; outsideRoots: string[]; volumes: string[]; tmp: string[] };
}

const GUESTS = ["101", "102"];

async function tmpMarked(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((n) => n.includes(MARKER));
}

async function setUp(scratch: string) {
  for (const g of GUESTS) {
    const data = join(scratch, "guests", g, "data");
    await mkdir(join(data, "nested"), { recursive: true });
    await writeFile(join(data, "canary.txt"), `canary of guest ${g}\n`);
    await writeFile(join(data, "nested", "records.log"), "record 1\nrecord 2\n");
  }
  const bin = join(scratch, "bin");
  await writeCommandShims(bin);
  const commandLog = join(scratch, "commands");
  await mkdir(commandLog);
  const agent = await startAgent({
    dir: join(scratch, "agent"),
    guests: GUESTS.map((id) => ({ id, driver: "dir" as const, snapshot: "copy" as const, volumes: [{ name: "data", path: join(scratch, "guests", id, "data") }] })),
    config: { quiesce: { timeoutMs: 300, policy: "crash-consistent" }, leaseTtlMs: 1_000, shutdownGraceMs: 5_000 },
    env: { PATH: bin, LULL_FUZZ_CMDLOG: commandLog },
  });
  return { agent, commandLog };
}

async function credentials(agent: AgentProcess): Promise<Credential[]> {
  const g101 = await agent.createToken({ guest: "101" });
  const g102 = await agent.createToken({ guest: "102" });
  const s101 = await agent.createToken({ guest: "101", stack: "app" });
  const op = await agent.createToken({ operator: true });
  const expired = await agent.createToken({ guest: "101" });
  const revoked = await agent.createToken({ guest: "102" });
  await agent.revokeToken(revoked.id);
  const db = new Database(join(String(agent.config.dataDir), "agent.db"));
  db.pragma("busy_timeout = 5000");
  db.prepare("UPDATE tokens SET expires_at = 1 WHERE id = ?").run(expired.id);
  db.close();
  const wrongSecret = `${g101.token.slice(0, 18)}${"A".repeat(43)}`;
  return [
    { name: "none", valid: false },
    { name: "garbage", token: `${MARKER}-not-a-token;id`, valid: false },
    { name: "wrong-secret", token: wrongSecret, valid: false },
    { name: "expired", token: expired.token, valid: false },
    { name: "revoked", token: revoked.token, valid: false },
    { name: "guest-101", token: g101.token, guestId: "101", valid: true },
    { name: "guest-102", token: g102.token, guestId: "102", valid: true },
    { name: "stack-101-app", token: s101.token, guestId: "101", valid: true },
    { name: "operator", token: op.token, valid: true },
  ];
}

const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rng = new Rng(seed);
  const started = Date.now();
  const scratch = await makeTempDir("lull-fuzz-");
  const tmpBefore = await tmpMarked();
  const { agent, commandLog } = await setUp(scratch);
  const roots = ["dataDir", "archiveDir", "stagingDir"].map((k) => String(agent.config[k]));
  const skip = [...roots, join(scratch, "agent", "run"), commandLog];
  const treeBefore = await listTree(scratch, skip);
  const world: FuzzWorld = { guests: GUESTS, stacks: ["app", "db"], jobIds: [], groupRunIds: [], sentinel: join(scratch, `${MARKER}-pwned`) };
  const creds = await credentials(agent);
  const clients = new Map<string, Client>(creds.map((c) => [c.name, credentialClient(agent.address, agent.fingerprint as string, c)]));
  const rpcs = Object.values(AgentService).map((m) => ({ path: m.path, rpc: m.path.slice(m.path.lastIndexOf("/") + 1), streaming: m.responseStream }));

  const report: FuzzReport = {
    seed, requests: 0, durationMs: 0, byStatus: {}, byCredential: {}, byRpc: {}, unexpected: [], authFailures: [], scopeLeaks: [],
    health: "", aliveAfterFuzz: false, finalBackup: "", exit: undefined,
    commands: { total: 0, byProgram: {}, problems: [] }, disk: { sentinel: [], marked: [], outsideRoots: [], volumes: [], tmp: [] },
  };
  const record = (rpc: string, cred: Credential, bytes: Buffer, r: CallResult) => {
    report.requests++;
    bump(report.byStatus, r.status);
    bump((report.byCredential[cred.name] ??= {}), r.status);
    bump((report.byRpc[rpc] ??= {}), r.status);
    const what = `${rpc} as ${cred.name}: ${r.status} ${r.details.slice(0, 160)}`;
    if (!EXPECTED_STATUSES.includes(r.status)) report.unexpected.push(what);
    if (!cred.valid && r.status !== "UNAUTHENTICATED" && !(r.status === "RESOURCE_EXHAUSTED" && bytes.length > 64 * 1024)) report.authFailures.push(what);
    if (cred.guestId !== undefined) {
      const leak = scopeLeak(rpc, bytes, r, cred.guestId);
      if (leak) report.scopeLeaks.push(`${cred.name}: ${leak}`);
    }
    if (rpc === "StartBackup" && r.status === "OK" && r.response) {
      const id = StartBackupResponse.decode(r.response).job?.id;
      if (id && !world.jobIds.includes(id)) world.jobIds.push(id);
    }
    if (rpc === "StartGroupBackup" && r.status === "OK" && r.response) {
      const group = StartGroupBackupResponse.decode(r.response).group;
      if (group?.id && !world.groupRunIds.includes(group.id)) world.groupRunIds.push(group.id);
      for (const id of group?.jobIds ?? []) if (!world.jobIds.includes(id)) world.jobIds.push(id);
    }
    options.progress?.(report.requests, options.requests);
  };
  const one = async (target: (typeof rpcs)[number], cred: Credential, bytes: Buffer, graceMs: number) => {
    const client = clients.get(cred.name) as Client;
    const r = target.streaming ? await streamCall(client, target.path, bytes, graceMs) : await unaryCall(client, target.path, bytes, 10_000);
    record(target.rpc, cred, bytes, r);
  };
  const byName = (name: string) => creds.find((c) => c.name === name) as Credential;
  const rpcNamed = (rpc: string) => rpcs.find((r) => r.rpc === rpc) as (typeof rpcs)[number];

  try {
    // Floods: RegisterStack from one guest, watch streams from another, calls without a token.
    const floods = Math.min(600, Math.floor(options.requests / 4));
    const reg = rpcNamed("RegisterStack");
    const regBytes = requestBytesFor(reg.rpc, { guestId: "101", stack: "app", controllerId: "flood" });
    await Promise.all(Array.from({ length: Math.floor(floods / 2) }, () => one(reg, byName("guest-101"), regBytes, 0)));
    const watch = rpcNamed("WatchEvents");
    await Promise.all(Array.from({ length: Math.floor(floods / 6) }, () => one(watch, byName("guest-102"), requestBytesFor(watch.rpc, { guestId: "102" }), 300)));
    await Promise.all(Array.from({ length: floods - Math.floor(floods / 2) - Math.floor(floods / 6) }, () => {
      const t = rng.pick(rpcs);
      return one(t, byName("none"), requestBytes(t.rpc, rng, world).bytes, 50);
    }));

    // Random requests, `concurrency` at a time.
    let next = report.requests;
    const worker = async () => {
      while (next < options.requests) {
        next++;
        const t = rng.pick(rpcs);
        await one(t, rng.pick(creds), requestBytes(t.rpc, rng, world).bytes, 50 + rng.int(100));
      }
    };
    await Promise.all(Array.from({ length: options.concurrency ?? 16 }, worker));

    // Still up? Health, then a real backup once the fuzzed jobs are cancelled and settled.
    report.health = await healthOf(clients.get("none") as Client);
    report.aliveAfterFuzz = agent.proc.exitStatus === undefined;
    const op = agent.client();
    for (const job of await op.listJobs("", true)) await op.cancel(job.guestId, job.id, "fuzz over").catch(() => undefined);
    await waitFor("the fuzzed jobs to end", async () => (await op.listJobs("", true)).length === 0, 30_000, 100);
    const final = await op.backup("101", 60_000);
    report.finalBackup = final.phase === Phase.PHASE_DONE ? "done" : `${isTerminal(final.phase) ? "ended" : "stuck"} ${final.phase} ${final.errorCode} ${final.errorMessage}`;
  } finally {
    for (const c of clients.values()) c.close();
    report.exit = await agent.stop(20_000);
  }

  // The canary.
  const commands = await readCommandLog(commandLog);
  report.commands.total = commands.length;
  for (const c of commands) bump(report.commands.byProgram, c.program);
  report.commands.problems = commands.map((c) => commandProblem(c, scratch)).filter((p): p is string => p !== undefined);
  report.disk.sentinel = (await readdir(scratch)).filter((n) => n.includes("pwned"));
  report.disk.marked = await markedPaths(scratch);
  report.disk.outsideRoots = treeDiff(treeBefore, await listTree(scratch, skip));
  report.disk.volumes = report.disk.outsideRoots.filter((c) => c.includes("guests/"));
  report.disk.tmp = (await tmpMarked()).filter((n) => !tmpBefore.includes(n));
  report.durationMs = Date.now() - started;
  if (!options.keep) await removeDir(scratch);
  return report;
}

/** A well-formed request of `rpc` (for the floods). */
function requestBytesFor(rpc: string, partial: Record<string, unknown>): Buffer {
  const codec = (proto as unknown as Record<string, { fromPartial(p: unknown): unknown; encode(m: unknown): { finish(): Uint8Array } }>)[requestMessageOf(rpc)];
  if (!codec) throw new Error(`no codec for ${rpc}`);
  return Buffer.from(codec.encode(codec.fromPartial(partial)).finish());
}

/** The report as the lines `npm run fuzz` prints. */
export function formatReport(r: FuzzReport): string[] {
  const pad = (s: string, n: number) => s.padEnd(n);
  const lines = [`fuzz: ${r.requests} requests in ${(r.durationMs / 1000).toFixed(1)} s (seed ${r.seed})`, "answers by status:"];
  for (const [s, n] of Object.entries(r.byStatus).sort((a, b) => b[1] - a[1])) lines.push(`  ${pad(s, 20)} ${n}`);
  lines.push("answers by credential:");
  for (const [c, m] of Object.entries(r.byCredential)) lines.push(`  ${pad(c, 14)} ${Object.entries(m).map(([s, n]) => `${s} ${n}`).join(", ")}`);
  lines.push("answers by RPC:");
  for (const [c, m] of Object.entries(r.byRpc)) lines.push(`  ${pad(c, 19)} ${Object.entries(m).map(([s, n]) => `${s} ${n}`).join(", ")}`);
  lines.push(
    `unexpected statuses: ${r.unexpected.length}; invalid credentials let through: ${r.authFailures.length}; guest scope leaks: ${r.scopeLeaks.length}`,
    `after the fuzz: agent alive ${r.aliveAfterFuzz}, health ${r.health}, a real backup ${r.finalBackup}, SIGTERM exit ${r.exit?.code ?? r.exit?.signal}`,
    `commands the agent ran: ${r.commands.total} (${Object.entries(r.commands.byProgram).map(([p, n]) => `${p} ${n}`).join(", ")}); problems: ${r.commands.problems.length}`,
    `canary: sentinel files ${r.disk.sentinel.length}, paths with the marker ${r.disk.marked.length}, changes outside the agent's roots ${r.disk.outsideRoots.length}, new marked entries in ${tmpdir()} ${r.disk.tmp.length}`,
  );
  for (const list of [r.unexpected, r.authFailures, r.scopeLeaks, r.commands.problems, r.disk.marked, r.disk.outsideRoots]) for (const x of list.slice(0, 10)) lines.push(`  ! ${x}`);
  return lines;
}
