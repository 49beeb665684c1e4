// The agent's end of the vzdump hook: a unix socket (owner-only, in an owner-only directory)
// that takes one HookMessage per connection and answers one HookReply. Messages go to the
// session attached for their vmid by the vzdump engine (matched on the vzdump process among the
// hook's ancestors); a `backup-start` that no session claims — a backup Proxmox started by itself
// (pvescheduler, the GUI) — goes to `onForeignBackup`, which may return a session for the rest of
// that guest's phases. Phases nobody handles are answered `ok` at once: the hook never blocks
// vzdump unless a session asks it to.
import { chmod, lstat, mkdir, unlink } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { LullError, type Logger } from "@lull/shared";
import { encodeLine, MAX_LINE_BYTES, parseHookMessage, type HookMessage, type HookReply } from "./hook-protocol.js";

export interface HookSession {
  /** The vzdump process this session started (undefined: not known yet, matches any run of this vmid). */
  readonly pid?: number | undefined;
  handle(message: HookMessage): Promise<HookReply> | HookReply;
}

/** A backup of `message.vmid` that no session claims; return a session to follow it, or nothing. */
export type ForeignBackupHandler = (message: HookMessage) => HookSession | undefined | Promise<HookSession | undefined>;

export interface HookServerOptions {
  socketPath: string;
  log: Logger;
  onForeignBackup?: ForeignBackupHandler;
  /** Bound on reading one request line from a connected hook. */
  readTimeoutMs?: number;
}

interface Attached {
  vmid: number;
  session: HookSession;
  /** Foreign sessions are bound to the vzdump worker that sent their backup-start and end at log-end. */
  boundPid?: number;
}

export class HookServer {
  private readonly attached = new Set<Attached>();
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  private readonly log: Logger;

  constructor(private readonly options: HookServerOptions) {
    this.log = options.log.child({ component: "hook-server" });
  }

  get socketPath(): string {
    return this.options.socketPath;
  }

  async start(): Promise<void> {
    const dir = dirname(this.options.socketPath);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const st = await lstat(dir);
    if (!st.isDirectory()) throw new LullError("LULL_E_CONFIG_INVALID", `pve.hook.socketPath: ${dir} is not a directory`);
    if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700);
    const existing = await lstat(this.options.socketPath).catch(() => undefined);
    if (existing?.isSocket()) await unlink(this.options.socketPath);
    else if (existing) throw new LullError("LULL_E_CONFIG_INVALID", `pve.hook.socketPath: ${this.options.socketPath} exists and is not a socket`);
    const server = createServer((socket) => this.onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
    await chmod(this.options.socketPath, 0o600);
    this.server = server;
    this.log.info({ socketPath: this.options.socketPath }, "hook server listening");
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(this.options.socketPath).catch(() => undefined);
  }

  /** Routes this vmid's hook messages to `session` until the returned function is called. */
  attach(vmid: number, session: HookSession): () => void {
    const entry: Attached = { vmid, session };
    this.attached.add(entry);
    return () => this.attached.delete(entry);
  }

  private find(message: HookMessage): Attached | undefined {
    const candidates = [...this.attached].filter((a) => message.vmid === undefined || a.vmid === message.vmid);
    const byPid = candidates.find((a) => {
      const pid = a.boundPid ?? a.session.pid;
      return pid !== undefined && message.pids.includes(pid);
    });
    if (byPid || message.vmid === undefined) return byPid;
    return candidates.find((a) => a.boundPid === undefined && a.session.pid === undefined);
  }

  /** Dispatches one message; never throws (a failure at pre-stop is a veto, elsewhere it is ignored). */
  async dispatch(message: HookMessage): Promise<HookReply> {
    let target = this.find(message);
    try {
      if (!target && message.phase === "backup-start" && this.options.onForeignBackup) {
        const session = await this.options.onForeignBackup(message);
        if (session) {
          target = { vmid: message.vmid!, session, ...(message.pids[0] !== undefined ? { boundPid: message.pids[0] } : {}) };
          this.attached.add(target);
          this.log.info({ vmid: message.vmid, mode: message.mode, pids: message.pids }, "backup started outside the agent: following it");
        }
      }
      if (!target) {
        this.log.debug({ phase: message.phase, vmid: message.vmid }, "hook phase with no session");
        return { ok: true };
      }
      return await target.session.handle(message);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.log.error({ phase: message.phase, vmid: message.vmid, err: reason }, "hook session failed");
      return message.phase === "pre-stop" ? { ok: false, reason } : { ok: true };
    } finally {
      if (target?.boundPid !== undefined && (message.phase === "log-end" || message.phase === "job-end" || message.phase === "job-abort")) {
        this.attached.delete(target);
      }
    }
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    socket.setEncoding("utf8");
    socket.setTimeout(this.options.readTimeoutMs ?? 10_000);
    let buffer = "";
    let handled = false;
    const drop = () => socket.destroy();
    socket.on("timeout", () => {
      if (!handled) drop();
    });
    socket.on("error", () => undefined);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("data", (chunk: string) => {
      if (handled) return;
      buffer += chunk;
      if (buffer.length > MAX_LINE_BYTES) return drop();
      const nl = buffer.indexOf("\n");
      if (nl < 0) return;
      handled = true;
      socket.setTimeout(0);
      void this.answer(socket, buffer.slice(0, nl));
    });
  }

  private async answer(socket: Socket, line: string): Promise<void> {
    let message: HookMessage;
    try {
      message = parseHookMessage(line);
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, "invalid hook message");
      socket.end(encodeLine({ ok: false, reason: "invalid message" }));
      return;
    }
    const reply = await this.dispatch(message);
    if (message.phase !== "pre-stop") reply.ok = true; // only pre-stop may veto
    if (!socket.destroyed) socket.end(encodeLine(reply));
  }
}
