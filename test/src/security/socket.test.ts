// The local operator socket of a real lull-agent: only its user (root) can reach it. The directory
// is 0700 and the socket 0600; a non-root uid (nobody, via setpriv) is refused by each of them on
// its own; root's lullctl needs no token there. Things in the way of the socket are not removed.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdir, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { ENTRY_POINTS, makeTempDir, removeDir, requireAvailable, startAgent, startProcess, type AgentProcess } from "../support/index.js";

let scratch: string;
let agent: AgentProcess;

function run(file: string, args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Connects to `path` as uid/gid 65534 (nobody); prints `connected` or the error code. */
function connectAsNobody(path: string) {
  const script = `require("node:net").connect(${JSON.stringify(path)}).on("connect",()=>{console.log("connected");process.exit(0)}).on("error",(e)=>{console.log(e.code);process.exit(1)})`;
  return run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e", script]);
}


before(async () => {
  scratch = await makeTempDir("lull-sec-socket-");
  const data = join(scratch, "data");
  await mkdir(data);
  agent = await startAgent({ dir: join(scratch, "agent"), guests: [{ id: "demo", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: data }] }] });
});

after(async () => {
  await agent?.stop();
  await removeDir(scratch);
});

test("the socket is 0600 in a 0700 directory of the agent's user; root's lullctl uses it without a token", async () => {
  const dirStat = await stat(dirname(agent.socketPath));
  const sockStat = await stat(agent.socketPath);
  assert.ok(sockStat.isSocket());
  assert.equal((dirStat.mode & 0o777).toString(8), "700");
  assert.equal((sockStat.mode & 0o777).toString(8), "600");
  assert.equal(sockStat.uid, process.getuid?.());
  const info = await run(process.execPath, [ENTRY_POINTS.lullctl, "--socket", agent.socketPath, "--json", "info"]);
  assert.equal(info.code, 0, info.stderr);
  assert.equal(JSON.parse(info.stdout).node, "test-node");
});

test("a non-root user cannot connect: the directory refuses it, and so does the socket itself", async () => {
  requireAvailable("root (to run a client as nobody with setpriv)", process.getuid?.() === 0 ? undefined : "not root");
  // Open the way down to the socket's directory so that only the agent's own modes stand between.
  for (const d of [scratch, join(scratch, "agent")]) await chmod(d, 0o755);
  const byDir = await connectAsNobody(agent.socketPath);
  assert.equal(byDir.stdout.trim(), "EACCES", `nobody through the 0700 directory: ${byDir.stdout}${byDir.stderr}`);
  const runDir = dirname(agent.socketPath);
  await chmod(runDir, 0o711); // traversable: now only the socket's 0600 refuses
  try {
    const bySocket = await connectAsNobody(agent.socketPath);
    assert.equal(bySocket.stdout.trim(), "EACCES", `nobody at the 0600 socket: ${bySocket.stdout}${bySocket.stderr}`);
  } finally {
    await chmod(runDir, 0o700);
  }
  const asRoot = await run(process.execPath, [ENTRY_POINTS.lullctl, "--socket", agent.socketPath, "info"]);
  assert.equal(asRoot.code, 0, asRoot.stderr);
});

test("a second agent on the same socket, a file in its place or an open directory stop the start with a clear error", async () => {
  const config = agent.configPath;
  // Its own data dir: on the same one the data dir lock refuses it before the socket (agent/src/datadir/).
  const second = startProcess({ name: "agent-2", args: [ENTRY_POINTS.agent, "--config", config, "--listen", "127.0.0.1:0", "--socket", agent.socketPath, "--data-dir", join(scratch, "second-data")] });
  await second.waitForExit(20_000);
  assert.ok(second.logs.some((l) => l.msg === "agent failed to start" && /another process is listening on/.test(String(l.err))), second.tail());
  assert.ok((await stat(agent.socketPath)).isSocket(), "the live socket was left alone");

  const other = join(scratch, "other");
  await mkdir(join(other, "run"), { recursive: true, mode: 0o700 });
  const notASocket = join(other, "run", "agent.sock");
  await writeFile(notASocket, "precious\n");
  const third = startProcess({ name: "agent-3", args: [ENTRY_POINTS.agent, "--config", config, "--listen", "127.0.0.1:0", "--socket", notASocket, "--data-dir", join(other, "data")] });
  await third.waitForExit(20_000);
  assert.ok(third.logs.some((l) => /exists and is not a socket; refusing to remove it/.test(String(l.err))), third.tail());
  assert.ok((await stat(notASocket)).isFile(), "the file is still there");

  const open = join(scratch, "open");
  await mkdir(open, { mode: 0o755 });
  await chmod(open, 0o755);
  const fourth = startProcess({ name: "agent-4", args: [ENTRY_POINTS.agent, "--config", config, "--listen", "127.0.0.1:0", "--socket", join(open, "agent.sock"), "--data-dir", join(other, "data")] });
  await fourth.waitForExit(20_000);
  assert.ok(fourth.logs.some((l) => /must have mode 0700 \(it has 755\)/.test(String(l.err))), fourth.tail());
});
