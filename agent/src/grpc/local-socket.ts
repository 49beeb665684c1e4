// The local operator socket's place on disk, made safe before the server binds it: the directory
// belongs to the agent's user with mode 0700 (so nobody else can even reach the socket), a
// leftover socket is removed only if it is a socket nobody answers on, anything else in the way
// is refused; after binding, the socket itself is made 0600.
import { chmod, lstat, mkdir, unlink } from "node:fs/promises";
import { connect } from "node:net";
import { dirname } from "node:path";
import { LullError } from "@lull/shared";

const PROBE_TIMEOUT_MS = 1_000;

const invalid = (message: string) => new LullError("LULL_E_CONFIG_INVALID", `listen.socket: ${message}`);

/** Whether something accepts connections on the socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (alive: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(alive);
    };
    const timer = setTimeout(() => done(true), PROBE_TIMEOUT_MS);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Prepares `path` for binding; throws LULL_E_CONFIG_INVALID naming the problem. */
export async function prepareSocketPath(path: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw invalid(`${dir} is not a directory`);
  const uid = typeof process.getuid === "function" ? process.getuid() : undefined;
  if (uid !== undefined && st.uid !== uid) throw invalid(`${dir} must belong to the agent's user (uid ${uid}), not uid ${st.uid}`);
  if ((st.mode & 0o077) !== 0) {
    throw invalid(`${dir} must have mode 0700 (it has ${(st.mode & 0o777).toString(8)}): other users could reach the socket`);
  }
  const existing = await lstat(path).catch(() => undefined);
  if (!existing) return;
  if (!existing.isSocket()) throw invalid(`${path} exists and is not a socket; refusing to remove it`);
  if (await answers(path)) throw invalid(`another process is listening on ${path}`);
  await unlink(path);
}

/** After binding: the socket is for the agent's user only. */
export async function restrictSocket(path: string): Promise<void> {
  await chmod(path, 0o600);
  const st = await lstat(path);
  if (!st.isSocket() || (st.mode & 0o077) !== 0) throw invalid(`${path} could not be made owner-only`);
}

/** At shutdown: removes the socket if it is still one. */
export async function removeSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st?.isSocket()) await unlink(path).catch(() => undefined);
}
