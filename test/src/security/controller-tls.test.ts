// Real lull-controller processes against a real lull-agent (TLS with its own CA, tokens): a wrong
// pinned fingerprint is refused by the controller before it sends anything (clear error, never
// registers); another guest's token is refused by the agent; a token without TLS is a config
// error; the right token and pin register — and no token shows up in either daemon's output.
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  ENTRY_POINTS,
  isRegisteredLog,
  makeTempDir,
  removeDir,
  sleep,
  startAgent,
  startController,
  startProcess,
  type AgentProcess,
  type ControllerProcess,
} from "../support/index.js";

let scratch: string;
let agent: AgentProcess;
const controllers: ControllerProcess[] = [];
const TRUE = { type: "command", start: ["/bin/true"], stop: ["/bin/true"], status: ["/bin/true"], timeoutMs: 5_000 };

before(async () => {
  scratch = await makeTempDir("lull-sec-tls-");
  for (const g of ["demo", "other"]) await mkdir(join(scratch, g));
  agent = await startAgent({
    dir: join(scratch, "agent"),
    guests: ["demo", "other"].map((id) => ({ id, driver: "dir" as const, snapshot: "copy" as const, volumes: [{ name: "data", path: join(scratch, id) }] })),
  });
});

after(async () => {
  for (const c of controllers) await c.stop(5_000).catch(() => undefined);
  await agent?.stop();
  await removeDir(scratch);
});

async function controller(name: string, agentConfig: Record<string, unknown>): Promise<ControllerProcess> {
  const c = await startController({
    dir: join(scratch, name),
    guestId: "demo",
    stack: "app",
    agent: agentConfig as never,
    driver: TRUE,
    leaseTtlMs: 1_500,
    waitRegistered: false,
    config: { controllerId: `ctl-${name}` },
  });
  controllers.push(c);
  return c;
}

const agentRegistered = (controllerId: string) => agent.proc.logs.some((l) => l.msg === "stack registered" && l.controllerId === controllerId);

test("a wrong fingerprint: the controller refuses the agent's certificate, says so, and never registers", async () => {
  const good = await agent.credentialsFor("demo", "app");
  const wrong = `sha256:${"5A:".repeat(31)}5A`;
  const c = await controller("wrong-pin", { ...good, tls: { fingerprint: wrong } });
  const line = await c.proc.waitForLog((l) => l.msg === "registering the stack failed", 15_000);
  assert.match(String(line.err), /refusing the agent's TLS certificate: the agent's certificate \(sha256:[0-9A-F:]+, issued by CA sha256:[0-9A-F:]+\) does not match the pinned fingerprint sha256:5A:5A/);
  await sleep(2_000); // a few more attempts
  assert.ok(c.proc.logsWithMsg("registering the stack failed").length >= 2, c.proc.tail());
  assert.ok(!c.proc.logs.some(isRegisteredLog), "the controller never registered");
  assert.ok(!agentRegistered("ctl-wrong-pin"), "the agent never saw it register");
  await c.stop(5_000);
});

test("another guest's token: the agent refuses the registration (PERMISSION_DENIED)", async () => {
  const foreign = await agent.credentialsFor("other");
  const c = await controller("foreign-token", foreign as unknown as Record<string, unknown>);
  const line = await c.proc.waitForLog((l) => l.msg === "registering the stack failed", 15_000);
  assert.match(String(line.err), /cannot act on another guest/);
  assert.ok(!c.proc.logs.some(isRegisteredLog));
  assert.ok(!agentRegistered("ctl-foreign-token"));
  assert.ok(agent.proc.logs.some((l) => l.msg === "call refused" && l.code === "LULL_E_PERMISSION_DENIED" && l.method === "RegisterStack"));
  await c.stop(5_000);
});

test("a token over plain TCP is a config error naming agent.tls", async () => {
  const { token } = await agent.createToken({ guest: "demo", stack: "app" });
  const path = join(scratch, "plain.json");
  await writeFile(path, JSON.stringify({ guestId: "demo", stack: "app", markerDir: join(scratch, "m"), driver: TRUE, agent: { address: agent.address, token } }));
  const proc = startProcess({ name: "controller-plain", args: [ENTRY_POINTS.controller, "--config", path] });
  const exit = await proc.waitForExit(15_000);
  assert.equal(exit.code, 2, proc.tail());
  const text = [...proc.stderrLines, ...proc.plainLines, ...proc.logs.map((l) => JSON.stringify(l))].join("\n");
  assert.match(text, /agent\.tls: a token is only sent over TLS/);
  assert.ok(!text.includes(token), "the error does not repeat the token");
});

test("the right token and pin register; no token appears in the output of either daemon", async () => {
  const good = await agent.credentialsFor("demo", "app");
  const tokenFile = join(scratch, "token");
  await writeFile(tokenFile, `${good.token}\n`, { mode: 0o600 });
  const c = await controller("good", { address: good.address, tokenFile, tls: good.tls });
  await c.proc.waitForLog(isRegisteredLog, 15_000);
  await agent.proc.waitForLog((l) => l.msg === "stack registered" && l.controllerId === "ctl-good", 5_000);
  await c.stop(5_000);
  const everything = [agent.proc, ...controllers.map((x) => x.proc)]
    .flatMap((p) => [...p.logs.map((l) => JSON.stringify(l)), ...p.plainLines, ...p.stderrLines])
    .join("\n");
  for (const t of [good.token]) {
    assert.ok(!everything.includes(t), "a token in the logs");
    assert.ok(!everything.includes(t.slice("lull_".length + 13)), "a token's secret in the logs");
  }
  assert.ok(!/lull_[0-9a-z]{12}_[A-Za-z0-9_-]{43}/.test(everything), "no token of any kind in the logs");
});
