// The wire protocol between the vzdump hook (lull-vzdump-hook) and the agent's hook server over
// a unix socket: the hook sends ONE line of JSON (a HookMessage), the agent answers ONE line (a
// HookReply) — at `pre-stop` only once the guest's stacks are quiesced (or refused). Kept free of
// dependencies: the hook imports it and must start fast.

export const HOOK_PROTOCOL_VERSION = 1;
/** Upper bound of one message line (the hook's env values are paths and names). */
export const MAX_LINE_BYTES = 16 * 1024;

export const GUEST_PHASES = ["backup-start", "pre-stop", "pre-restart", "post-restart", "backup-end", "backup-abort", "log-end"] as const;
export const JOB_PHASES = ["job-init", "job-start", "job-end", "job-abort"] as const;
export const VZDUMP_MODES = ["snapshot", "suspend", "stop"] as const;
/** The variables vzdump sets for its hook (the rest of the environment is wiped). */
export const HOOK_ENV_KEYS = ["STOREID", "DUMPDIR", "VMTYPE", "HOSTNAME", "TARGET", "LOGFILE"] as const;

export type GuestPhase = (typeof GUEST_PHASES)[number];
export type JobPhase = (typeof JOB_PHASES)[number];
export type HookPhase = GuestPhase | JobPhase;
export type VzdumpMode = (typeof VZDUMP_MODES)[number];
export type HookEnv = Partial<Record<(typeof HOOK_ENV_KEYS)[number], string>>;

export interface HookMessage {
  v: typeof HOOK_PROTOCOL_VERSION;
  phase: HookPhase;
  /** Guest phases only: the actual mode and the guest. */
  mode?: VzdumpMode;
  vmid?: number;
  env: HookEnv;
  /** The hook's ancestors, parent first (vzdump's worker, then the vzdump CLI …): routes the message to the run that started it. */
  pids: number[];
}

export interface HookReply {
  /** false only at `pre-stop`: the hook exits non-zero and vzdump fails this guest. */
  ok: boolean;
  /** Why the backup is vetoed (printed by the hook, so it lands in vzdump's log). */
  reason?: string;
  /** A line the hook prints (vzdump logs it as `INFO: lull: <message>`). */
  message?: string;
}

export function isGuestPhase(phase: string): phase is GuestPhase {
  return (GUEST_PHASES as readonly string[]).includes(phase);
}

export function isJobPhase(phase: string): phase is JobPhase {
  return (JOB_PHASES as readonly string[]).includes(phase);
}

const PRINTABLE = /^[\x20-\x7e\u00a0-\uffff]*$/;

function checkEnv(raw: unknown): HookEnv {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error("env must be an object");
  const env: HookEnv = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!(HOOK_ENV_KEYS as readonly string[]).includes(k)) throw new Error(`env key ${k} is not a vzdump hook variable`);
    if (typeof v !== "string" || v.length > 4096 || !PRINTABLE.test(v)) throw new Error(`env ${k} is not a printable string`);
    env[k as keyof HookEnv] = v;
  }
  if (env.VMTYPE !== undefined && env.VMTYPE !== "lxc" && env.VMTYPE !== "qemu") throw new Error(`VMTYPE ${env.VMTYPE} is neither lxc nor qemu`);
  return env;
}

/** Strict validation of one message line; throws an Error naming what is wrong. */
export function parseHookMessage(line: string): HookMessage {
  if (line.length > MAX_LINE_BYTES) throw new Error("message too long");
  const raw = JSON.parse(line) as Record<string, unknown>;
  if (raw === null || typeof raw !== "object") throw new Error("message must be an object");
  if (raw.v !== HOOK_PROTOCOL_VERSION) throw new Error(`unsupported protocol version ${String(raw.v)}`);
  const phase = raw.phase;
  if (typeof phase !== "string" || (!isGuestPhase(phase) && !isJobPhase(phase))) throw new Error(`unknown phase ${String(phase)}`);
  const pids = raw.pids;
  if (!Array.isArray(pids) || pids.length > 16 || !pids.every((p) => Number.isInteger(p) && p > 0)) throw new Error("pids must be a list of process ids");
  const message: HookMessage = { v: HOOK_PROTOCOL_VERSION, phase, env: checkEnv(raw.env ?? {}), pids: pids as number[] };
  if (isGuestPhase(phase)) {
    if (typeof raw.mode !== "string" || !(VZDUMP_MODES as readonly string[]).includes(raw.mode)) throw new Error(`mode ${String(raw.mode)} is not a vzdump mode`);
    if (!Number.isInteger(raw.vmid) || (raw.vmid as number) < 100 || (raw.vmid as number) > 999_999_999) throw new Error(`vmid ${String(raw.vmid)} is not a Proxmox vmid`);
    message.mode = raw.mode as VzdumpMode;
    message.vmid = raw.vmid as number;
  }
  return message;
}

export function parseHookReply(line: string): HookReply {
  const raw = JSON.parse(line) as Record<string, unknown>;
  if (typeof raw.ok !== "boolean") throw new Error("reply without ok");
  const reply: HookReply = { ok: raw.ok };
  if (typeof raw.reason === "string") reply.reason = raw.reason.slice(0, 1024);
  if (typeof raw.message === "string") reply.message = raw.message.slice(0, 1024);
  return reply;
}

export function encodeLine(value: HookMessage | HookReply): string {
  return `${JSON.stringify(value)}\n`;
}
