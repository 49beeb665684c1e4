// lullctl's command line: `lullctl [--socket PATH | --agent ADDR] [--json] <command> [options]`, parsed into a
// typed Invocation. Global options may appear before or after the command. Every bad argument is a
// LullError(LULL_E_INVALID_ARGUMENT), which lullctl reports with exit code 2.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { QuiescePolicy } from "@lull/proto";
import { GROUP_ID, GROUP_RUN_ID, LIMITS, LullError, validGroupRunId, validate } from "@lull/shared";

export type Command =
  | { name: "backup"; guest: string; wait: boolean; policy: QuiescePolicy; key?: string; quiesceTimeoutMs: number }
  /** A consistency group: a configured one (`--group`) or the guests listed (two or more). */
  | { name: "group-backup"; groupId?: string; guests: string[]; wait: boolean; policy: QuiescePolicy; key?: string; quiesceTimeoutMs: number }
  | { name: "groups"; guest?: string; active: boolean; limit: number }
  | { name: "group"; runId: string }
  | { name: "jobs"; guest?: string; active: boolean; limit: number; page?: string }
  | { name: "job"; guest: string; jobId: string }
  | { name: "cancel"; guest: string; jobId: string; reason: string }
  /** A group run as a whole: by its run id, or by a configured group's id (its run that has not ended). */
  | { name: "cancel-group"; runId?: string; groupId?: string; reason: string }
  | { name: "events"; guest?: string; jobId?: string; groupRunId?: string; afterSeq: number; follow: boolean }
  | { name: "info" }
  /** Follow a running job until its snapshot exists or it ends; `timeoutMs` 0: no timeout. */
  | { name: "wait"; guest: string; jobId: string; until: "snapshotted" | "done"; timeoutMs: number }
  | { name: "verify"; guest: string; pointId: string; wait: boolean }
  | { name: "verifications"; guest: string; pointId?: string }
  | { name: "prune"; guest: string; dryRun: boolean }
  | { name: "schedules"; scheduleId?: string; ticks: number }
  | { name: "backups"; guest?: string; limit: number }
  /** A point by id; without the guest, lullctl finds the guest that holds it. */
  | { name: "backup-info" | "protect" | "unprotect"; guest?: string; pointId: string }
  /** A point back into a directory (`to`) or to a guest (`vmid`, or the next free id when undefined and `to` is too). */
  | { name: "restore"; guest?: string; pointId: string; to?: string; inPlace?: boolean; vmid?: number; storage?: string; start: boolean; force: boolean; wait: boolean }
  | { name: "restores"; guest?: string; limit: number }
  | { name: "restore-cancel"; restoreId: string; reason: string }
  | { name: "help" };

export interface Invocation {
  /** `--agent`, when given; the config layer falls back to LULL_AGENT and the default. */
  agent?: string;
  /** `--socket`, `--token-file`, `--tls-fingerprint`, when given (config.ts resolves them). */
  socket?: string;
  tokenFile?: string;
  tlsFingerprint?: string;
  json: boolean;
  /** `--cluster`: ask every node of the cluster and merge the answers (jobs, backups, schedules, events). */
  cluster?: boolean;
  /** `--node-timeout`: the deadline of each node's answer with --cluster. */
  nodeTimeoutMs?: number;
  command: Command;
}

/** The commands `--cluster` merges across the nodes. */
export const CLUSTER_COMMANDS: ReadonlySet<string> = new Set(["jobs", "backups", "schedules", "events"]);

export const USAGE = `usage: lullctl [--socket PATH | --agent ADDR] [--json] <command> [options]

commands:
  backup <guest> [--wait] [--policy fail|crash-consistent] [--key KEY] [--quiesce-timeout MS]
                             start a backup; --wait follows it live to its end
  backup --group ID | backup <guest> <guest>... [same options]
                             back up a consistency group (configured, or these guests) as one:
                             one quiesce barrier, one snapshot point, then each member archives
  groups [--guest G] [--active] [--limit N]
                             list the configured groups and their runs, newest first
  group <run-id>             show one group run with every member and stack
  jobs [--guest G] [--active] [--limit N] [--page TOKEN]
                             list jobs, newest first (--page: the page after the one that printed TOKEN)
  job <guest> <job-id>       show one job
  cancel <guest> <job-id> [--reason R]
                             cancel a job that has not ended
  cancel --group RUN|GROUP [--reason R]
                             cancel a consistency group run as a whole (by its run id, or the
                             configured group's run that has not ended): every member that has
                             not ended is cancelled; before the snapshot point no copy is kept
                             and every stopped stack is started again, after it partial archives
                             are removed (members already done stay done)
  events [--guest G] [--job J] [--group RUN] [--after SEQ] [--follow]
                             print phase events; --follow keeps tailing and reconnects
  info                       show the agent's node, version and guests
  wait <guest> <job-id> --until snapshotted|done [--timeout MS]
                             follow a running job until its snapshot exists or it ended; exit
                             0 reached, 1 failed or cancelled, 3 no snapshot point (its mode makes
                             none), 124 --timeout passed (the job goes on)
  verify <guest> <point-id> [--wait]
                             verify a restore point on an ephemeral replica with the guest's
                             declared checks (verify.checks); --wait follows it to its end
  verifications <guest> [--point P]
                             the guest's verification runs with their evidence, and each
                             stack's verified point
  backups [guest] [--limit N]
                             the catalog: restore points of the guest (every guest without one),
                             newest first, with location, SHA-256, manifest, integrity, protected
  backup-info [guest] <point-id>
                             one restore point in full
  protect [guest] <point-id> / unprotect [guest] <point-id>
                             set or clear the point's protected flag (prune never removes it)
  prune <guest> [--dry-run]  retention of the guest's restore points (prune.keep): each point
                             with keep/remove and why; without --dry-run the remove points go
  restore [guest] <point-id> --to DIR [--force] [--wait]
                             a native point into a directory of the agent's node: the archive's
                             hash, manifest and every member are checked before anything is
                             written (a hostile or tampered archive is refused), it is extracted
                             beside the target and moved in; a non-empty DIR needs --force
                             (its contents are replaced)
  restore [guest] <point-id> --in-place [--force] [--wait]
                             a native point back over its guest's own volumes: extracted beside
                             them while the stacks run, then the stacks are stopped by their
                             controllers and held while the volumes are replaced, and started
                             again at the end (--force: when no controller holds a stack)
  restore [guest] <point-id> --guest VMID|next [--storage S] [--start] [--force] [--wait]
                             a vzdump or PBS point to a guest (pct restore / qmrestore, --unique
                             1); next: the next free vmid; an existing (stopped) guest needs --force
  restores [guest] [--limit N]
                             restore runs, newest first, with target, phase and outcome
  restore-cancel <restore-id> [--reason R]
                             cancel a restore before it replaces its target
  schedules [--schedule ID] [--ticks N]
                             each schedule's last run and result, next run, and its newest
                             ticks: runs, and missed or skipped ticks with the reason

global options:
  --socket PATH  the agent's local socket (default: $LULL_SOCKET, then /run/lull/agent.sock; root only)
  --agent ADDR   a network agent host:port instead (default: $LULL_AGENT); it needs TLS and a token:
  --tls-fingerprint FP   pin the agent's CA (\`lull-agent cert fingerprint\`; default $LULL_TLS_FINGERPRINT)
  --token-file FILE      an operator token (\`lull-agent token create --operator\`; default $LULL_TOKEN_FILE)
  --json         machine-readable output: one JSON document, or one JSON object per line for events
                 and for what backup --wait and wait follow (phase, stack, note, progress, summary, error)
  --cluster      jobs, backups, schedules, events [--follow]: ask every node of the cluster (root on a
                 node: its member list in pmxcfs, this node over its socket, the others with this
                 node's credential) and merge the answers with a NODE column; a node that does not
                 answer is shown as "unreachable: <reason>"; events --follow resumes each node after
                 its own last sequence number. Not with --after, --job, --group or --page.
  --node-timeout MS      with --cluster: how long a node has to answer (default 5000)
  -h, --help     show this help

exit codes: 0 success, 1 failure (job failed or cancelled, agent error), 2 usage error,
            4 (--cluster) some nodes did not answer (1: none did)`;

type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

const GLOBAL_OPTIONS: OptionSpec = {
  agent: { type: "string" },
  socket: { type: "string" },
  "token-file": { type: "string" },
  "tls-fingerprint": { type: "string" },
  json: { type: "boolean" },
  cluster: { type: "boolean" },
  "node-timeout": { type: "string" },
  help: { type: "boolean", short: "h" },
};

const COMMAND_OPTIONS: Record<string, OptionSpec> = {
  backup: {
    wait: { type: "boolean" },
    policy: { type: "string" },
    key: { type: "string" },
    "quiesce-timeout": { type: "string" },
    group: { type: "string" },
  },
  groups: { guest: { type: "string" }, active: { type: "boolean" }, limit: { type: "string" } },
  group: {},
  jobs: { guest: { type: "string" }, active: { type: "boolean" }, limit: { type: "string" }, page: { type: "string" } },
  job: {},
  cancel: { reason: { type: "string" }, group: { type: "string" } },
  events: { guest: { type: "string" }, job: { type: "string" }, group: { type: "string" }, after: { type: "string" }, follow: { type: "boolean" } },
  info: {},
  wait: { until: { type: "string" }, timeout: { type: "string" } },
  verify: { wait: { type: "boolean" } },
  verifications: { point: { type: "string" } },
  prune: { "dry-run": { type: "boolean" } },
  schedules: { schedule: { type: "string" }, ticks: { type: "string" } },
  backups: { limit: { type: "string" } },
  "backup-info": {},
  restore: { to: { type: "string" }, "in-place": { type: "boolean" }, guest: { type: "string" }, storage: { type: "string" }, start: { type: "boolean" }, force: { type: "boolean" }, wait: { type: "boolean" } },
  restores: { limit: { type: "string" } },
  "restore-cancel": { reason: { type: "string" } },
  protect: {},
  unprotect: {},
  help: {},
};

/** A restore point id: `b-` + a job id's 26 characters (`lullctl backups` lists them). */
function pointIdArg(value: string, field: string): string {
  if (!/^b-[0-9a-z]{26}$/.test(value)) throw usageError(`${field} must be a restore point id (b-…, as lullctl backups lists them), got "${value}"`);
  return value;
}

function usageError(message: string): LullError {
  return new LullError("LULL_E_INVALID_ARGUMENT", message);
}

const VALUED_GLOBALS = new Set(["--agent", "--socket", "--token-file", "--tls-fingerprint", "--node-timeout"]);

/** The first token that is neither a global option nor the value of one: the command's name. */
function findCommandName(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? "";
    if (VALUED_GLOBALS.has(token)) i++;
    else if (!token.startsWith("-")) return token;
  }
  return undefined;
}

function integer(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw usageError(`${flag} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw usageError(`${flag} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function policyFromFlag(value: string | undefined): QuiescePolicy {
  switch (value) {
    case undefined:
      return QuiescePolicy.QUIESCE_POLICY_UNSPECIFIED;
    case "fail":
      return QuiescePolicy.QUIESCE_POLICY_FAIL;
    case "crash-consistent":
      return QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT;
    default:
      throw usageError(`--policy must be fail or crash-consistent, got "${value}"`);
  }
}

function positionals(list: string[], names: readonly string[], command: string): string[] {
  if (list.length < names.length) {
    throw usageError(`${command}: missing ${names.slice(list.length).map((n) => `<${n}>`).join(" ")}`);
  }
  if (list.length > names.length) throw usageError(`${command}: unexpected argument "${list[names.length]}"`);
  return list;
}

function cancelGroupCommand(group: string, rest: string[], reason: string): Command {
  if (rest.length > 0) throw usageError(`cancel --group takes no <guest> <job-id> (got "${rest[0]}"); it cancels every member of the run`);
  if (GROUP_RUN_ID.test(group)) return { name: "cancel-group", runId: group, reason };
  if (!GROUP_ID.test(group)) throw usageError(`--group must be a group run id (g-…) or a configured group's id (${GROUP_ID.source}), got "${group}"`);
  return { name: "cancel-group", groupId: group, reason };
}

function buildCommand(name: string, values: Record<string, string | boolean | undefined>, rest: string[]): Command {
  const str = (key: string) => values[key] as string | undefined;
  const flag = (key: string) => values[key] === true;
  switch (name) {
    case "backup": {
      const groupId = str("group");
      const key = str("key");
      const options = {
        wait: flag("wait"),
        policy: policyFromFlag(str("policy")),
        ...(key !== undefined ? { key: validate.idempotencyKey(key, "--key") } : {}),
        quiesceTimeoutMs: integer(str("quiesce-timeout"), "--quiesce-timeout", 100, 3_600_000) ?? 0,
      };
      if (groupId === undefined && rest.length <= 1) {
        const [guest] = positionals(rest, ["guest"], name) as [string];
        return { name, guest: validate.guestId(guest, "guest"), ...options };
      }
      if (groupId !== undefined && !GROUP_ID.test(groupId)) throw usageError(`--group must match ${GROUP_ID.source}, got "${groupId}"`);
      const guests = rest.map((g) => validate.guestId(g, "guest"));
      if (new Set(guests).size !== guests.length) throw usageError(`${name}: a guest is listed twice`);
      return { name: "group-backup", ...(groupId !== undefined ? { groupId } : {}), guests, ...options };
    }
    case "group": {
      const [runId] = positionals(rest, ["run-id"], name) as [string];
      return { name, runId: validGroupRunId(runId, "run-id") };
    }
    case "groups":
    case "jobs": {
      positionals(rest, [], name);
      const guest = str("guest");
      return {
        name,
        ...(guest !== undefined ? { guest: validate.guestId(guest, "--guest") } : {}),
        active: flag("active"),
        limit: integer(str("limit"), "--limit", 1, 1000) ?? 0,
        ...(name === "jobs" && str("page") !== undefined ? { page: pageArg(str("page") as string) } : {}),
      };
    }
    case "job":
    case "cancel": {
      const reason = validate.text(str("reason") ?? "", "--reason", LIMITS.reason);
      const group = str("group");
      if (name === "cancel" && group !== undefined) return cancelGroupCommand(group, rest, reason);
      const [guest, jobId] = positionals(rest, ["guest", "job-id"], name) as [string, string];
      const ids = { guest: validate.guestId(guest, "guest"), jobId: validate.jobId(jobId, "job-id") };
      if (name === "job") return { name, ...ids };
      return { name, ...ids, reason };
    }
    case "events": {
      positionals(rest, [], name);
      const guest = str("guest");
      const jobId = str("job");
      const groupRunId = str("group");
      return {
        name,
        ...(guest !== undefined ? { guest: validate.guestId(guest, "--guest") } : {}),
        ...(jobId !== undefined ? { jobId: validate.jobId(jobId, "--job") } : {}),
        ...(groupRunId !== undefined ? { groupRunId: validGroupRunId(groupRunId, "--group") } : {}),
        afterSeq: integer(str("after"), "--after", 0, Number.MAX_SAFE_INTEGER) ?? 0,
        follow: flag("follow"),
      };
    }
    case "info":
      positionals(rest, [], name);
      return { name };
    case "wait": {
      const [guest, jobId] = positionals(rest, ["guest", "job-id"], name) as [string, string];
      const until = str("until");
      if (until !== "snapshotted" && until !== "done") {
        throw usageError(`wait: --until must be snapshotted or done, got ${until === undefined ? "nothing" : `"${until}"`}`);
      }
      return {
        name,
        guest: validate.guestId(guest, "guest"),
        jobId: validate.jobId(jobId, "job-id"),
        until,
        timeoutMs: integer(str("timeout"), "--timeout", 1, 7 * 24 * 3_600_000) ?? 0,
      };
    }
    case "verify": {
      const [guest, pointId] = positionals(rest, ["guest", "point-id"], name) as [string, string];
      return { name, guest: validate.guestId(guest, "guest"), pointId: pointIdArg(pointId, "point-id"), wait: flag("wait") };
    }
    case "verifications": {
      const [guest] = positionals(rest, ["guest"], name) as [string];
      const point = str("point");
      return { name, guest: validate.guestId(guest, "guest"), ...(point !== undefined ? { pointId: pointIdArg(point, "--point") } : {}) };
    }
    case "prune": {
      const [guest] = positionals(rest, ["guest"], name) as [string];
      return { name, guest: validate.guestId(guest, "guest"), dryRun: flag("dry-run") };
    }
    case "schedules": {
      positionals(rest, [], name);
      const id = str("schedule");
      if (id !== undefined && !/^[a-z0-9][a-z0-9-]{0,47}$/.test(id)) {
        throw usageError(`--schedule ${JSON.stringify(id)} is not a schedule id ([a-z0-9-], at most 48 characters)`);
      }
      return { name, ...(id !== undefined ? { scheduleId: id } : {}), ticks: integer(str("ticks"), "--ticks", 1, 1000) ?? 0 };
    }
    case "backups": {
      if (rest.length > 1) throw usageError(`backups: unexpected argument "${rest[1]}"`);
      return { name, ...(rest[0] !== undefined ? { guest: validate.guestId(rest[0], "guest") } : {}), limit: integer(str("limit"), "--limit", 1, 1000) ?? 0 };
    }
    case "backup-info":
    case "protect":
    case "unprotect": {
      if (rest.length === 0) throw usageError(`${name}: missing <point-id>`);
      if (rest.length > 2) throw usageError(`${name}: unexpected argument "${rest[2]}"`);
      const [guest, pointId] = rest.length === 2 ? [rest[0]!, rest[1]!] : [undefined, rest[0]!];
      return { name, ...(guest !== undefined ? { guest: validate.guestId(guest, "guest") } : {}), pointId: pointIdArg(pointId, "point-id") };
    }
    case "restore": {
      if (rest.length === 0) throw usageError("restore: missing <point-id>");
      if (rest.length > 2) throw usageError(`restore: unexpected argument "${rest[2]}"`);
      const [guest, pointId] = rest.length === 2 ? [rest[0]!, rest[1]!] : [undefined, rest[0]!];
      const to = str("to");
      const vmidText = str("guest");
      const inPlace = flag("in-place");
      if ([to !== undefined, vmidText !== undefined, inPlace].filter(Boolean).length !== 1) {
        throw usageError("restore: give exactly one of --to DIR or --in-place (a native point) or --guest VMID|next (a vzdump or PBS point)");
      }
      if (to !== undefined && !to.startsWith("/")) throw usageError(`restore: --to ${JSON.stringify(to)} must be an absolute directory path`);
      if (vmidText === undefined && (str("storage") !== undefined || flag("start"))) throw usageError("restore: --storage and --start go with --guest");
      const vmid = vmidText === undefined || vmidText === "next" ? undefined : integer(vmidText, "--guest", 100, 999_999_999);
      const storage = str("storage");
      return {
        name,
        ...(guest !== undefined ? { guest: validate.guestId(guest, "guest") } : {}),
        pointId: pointIdArg(pointId, "point-id"),
        ...(to !== undefined ? { to } : {}),
        ...(inPlace ? { inPlace } : {}),
        ...(vmid !== undefined ? { vmid } : {}),
        ...(storage !== undefined ? { storage } : {}),
        start: flag("start"),
        force: flag("force"),
        wait: flag("wait"),
      };
    }
    case "restores": {
      if (rest.length > 1) throw usageError(`restores: unexpected argument "${rest[1]}"`);
      return { name, ...(rest[0] !== undefined ? { guest: validate.guestId(rest[0], "guest") } : {}), limit: integer(str("limit"), "--limit", 1, 500) ?? 0 };
    }
    case "restore-cancel": {
      const [id] = positionals(rest, ["restore-id"], name) as [string];
      if (!/^r-\d{8}T\d{6}-[0-9a-f]{6}$/.test(id)) throw usageError(`restore-cancel: ${JSON.stringify(id)} is not a restore id (lullctl restores lists them)`);
      return { name, restoreId: id, reason: str("reason") ?? "" };
    }
    default:
      return { name: "help" };
  }
}

/** Parses lullctl's arguments (without `node` and the script path). */
export function parseInvocation(argv: readonly string[]): Invocation {
  const wantsHelp = argv.includes("--help") || argv.includes("-h");
  const name = findCommandName(argv) ?? (wantsHelp ? "help" : undefined);
  if (name === undefined) throw usageError("missing command");
  const commandOptions = COMMAND_OPTIONS[name];
  if (!commandOptions) throw usageError(`unknown command "${name}"`);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...GLOBAL_OPTIONS, ...commandOptions },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw usageError(`${name}: ${(err as Error).message}`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const rest = parsed.positionals.slice(1);
  const command: Command = values.help === true ? { name: "help" } : buildCommand(name, values, rest);
  const connection: Record<string, string> = {};
  for (const [flag, key] of [["agent", "agent"], ["socket", "socket"], ["token-file", "tokenFile"], ["tls-fingerprint", "tlsFingerprint"]] as const) {
    if (typeof values[flag] === "string") connection[key] = values[flag] as string;
  }
  const cluster = values.cluster === true;
  const nodeTimeoutMs = integer(values["node-timeout"] as string | undefined, "--node-timeout", 100, 600_000);
  if (nodeTimeoutMs !== undefined && !cluster) throw usageError("--node-timeout goes with --cluster");
  if (cluster && command.name !== "help") checkClusterCommand(command, values);
  return { ...connection, json: values.json === true, ...(cluster ? { cluster } : {}), ...(nodeTimeoutMs !== undefined ? { nodeTimeoutMs } : {}), command };
}

/** `--cluster` merges jobs, backups, schedules and events; options that name one node's state are refused. */
function checkClusterCommand(command: Command, values: Record<string, string | boolean | undefined>): void {
  if (!CLUSTER_COMMANDS.has(command.name)) throw usageError(`--cluster goes with ${[...CLUSTER_COMMANDS].join(", ")}, not ${command.name}`);
  if (values.agent !== undefined) throw usageError("--cluster asks every node from this one: not with --agent (use --socket for this node's agent)");
  const perNode: Record<string, string> = { page: "a page token is one node's", after: "sequence numbers are per node", job: "a job lives on one node", group: "a group run lives on one node" };
  for (const [flag, why] of Object.entries(perNode)) {
    if (values[flag] !== undefined) throw usageError(`--cluster: --${flag} is not supported (${why}; ask that node without --cluster)`);
  }
}

/** `--page`: a token a previous `lullctl jobs` printed (the agent checks it further). */
function pageArg(value: string): string {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(value)) throw usageError("--page: expected the token a previous `lullctl jobs` printed after `more:`");
  return value;
}
