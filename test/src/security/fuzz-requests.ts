// Hostile requests for every RPC of lull.v1.Agent: field values drawn from valid ones, other
// guests', empty, huge, control characters, shell metacharacters, path traversal, unknown enum
// values and out-of-range numbers — or no message at all but raw bytes (garbage, truncated, wrong
// wire types, a uint64 beyond 2^53). Every hostile string carries MARKER, so a canary can tell
// whether any of it reached a command line or a file name.
import * as proto from "@lull/proto";
import { requestMessageOf } from "./fuzz-calls.js";

export const MARKER = "lullfuzz";

/** A small seeded PRNG (mulberry32) so a failing run can be replayed with its seed. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** What the generators know about the agent under test. */
export interface FuzzWorld {
  guests: readonly string[];
  stacks: readonly string[];
  /** Job ids seen so far (filled in as StartBackup answers). */
  jobIds: string[];
  /** Consistency group run ids seen so far (filled in as StartGroupBackup answers). */
  groupRunIds: string[];
  /** Where a shell injection would leave its mark, if one ever ran. */
  sentinel: string;
}

function hostileStrings(w: FuzzWorld): string[] {
  const s = w.sentinel;
  return [
    `${MARKER}; touch ${s}`,
    `$(touch ${s})`,
    `\`touch ${s}\``,
    `${MARKER} | tee ${s}`,
    `${MARKER}&&touch ${s}`,
    `../../../${MARKER}-escape`,
    `/etc/${MARKER}/../../passwd`,
    `..%2f..%2f${MARKER}`,
    `${MARKER}\u0000nul`,
    `${MARKER}\nnewline`,
    `${MARKER}\r\n\t\x1b[31m`,
    `-${MARKER}`,
    `--${MARKER}=1`,
    `${MARKER}' OR '1'='1`,
    `${MARKER}"; DROP TABLE jobs; --`,
    `${MARKER}*?[]{}~`,
    `${MARKER}-é-ü-中文-🙂`,
    `${MARKER}\ud800`,
    `${MARKER}${"x".repeat(65)}`,
    `${MARKER}${"y".repeat(1100)}`,
    `${MARKER}${"z".repeat(70_000)}`,
  ];
}

export function stringFor(rng: Rng, w: FuzzWorld, valid: readonly string[]): string {
  const r = rng.next();
  if (r < 0.45 && valid.length > 0) return rng.pick(valid);
  if (r < 0.55) return "";
  return rng.pick(hostileStrings(w));
}

const NUMBERS = [0, 1, 50, 99, 100, 500, 1000, 5000, 60_000, 600_001, 2 ** 31 - 1, 2 ** 32 - 1];
const BIG = [2 ** 53 - 1, 2 ** 40, 1e15];
const ENUMS = [0, 1, 2, 3, 7, 99, 2 ** 31 - 1];

function num(rng: Rng, big = false): number {
  return rng.pick(big && rng.chance(0.3) ? BIG : NUMBERS);
}

function date(rng: Rng): Date | undefined {
  return rng.pick([undefined, new Date(), new Date(0), new Date(-1000), new Date(8.64e15), new Date(Date.now() + 86_400_000)]);
}

const shapedId = (rng: Rng, prefix: string) => `${prefix}-${Array.from({ length: 26 }, () => rng.pick([..."0123456789abcdefghijklmnopqrstuvwxyz"])).join("")}`;

function jobId(rng: Rng, w: FuzzWorld): string {
  return stringFor(rng, w, [...w.jobIds, ...w.jobIds, shapedId(rng, "j")]);
}

/** A run the agent started, a well-formed id of no run (NOT_FOUND), a job id (malformed for a run), or a hostile string. */
function groupRunId(rng: Rng, w: FuzzWorld): string {
  return stringFor(rng, w, [...w.groupRunIds, ...w.groupRunIds, shapedId(rng, "g"), shapedId(rng, "j"), "g-", `g-${"0".repeat(27)}`]);
}

/** Field values for the request of `rpc` (a partial: the codec fills in the rest). */
export function partialRequest(rpc: string, rng: Rng, w: FuzzWorld): Record<string, unknown> {
  const guest = () => stringFor(rng, w, w.guests);
  const stack = () => stringFor(rng, w, w.stacks);
  const text = () => stringFor(rng, w, ["fuzz", "lullctl root@pve1", ""]);
  switch (rpc) {
    case "GetAgentInfo":
      return {};
    case "StartBackup":
      // Often a request the agent accepts, carrying shell metacharacters where its fields allow printable text.
      if (rng.chance(0.5)) {
        return {
          guestId: rng.pick(w.guests),
          idempotencyKey: rng.pick([`k-${rng.int(1e9)}`, `${MARKER}$(touch\${IFS}${w.sentinel})-${rng.int(1e9)}`, `${MARKER};rm\${IFS}-rf\${IFS}/;${rng.int(1e9)}`]),
          policy: rng.pick([0, 1, 2]),
          quiesceTimeoutMs: rng.pick([0, 100, 300]),
          requestedBy: rng.pick([`${MARKER} $(touch ${w.sentinel})`, `${MARKER} \`id\` | tee ${w.sentinel}`, "lullctl root@pve1"]),
        };
      }
      return { guestId: guest(), idempotencyKey: stringFor(rng, w, [`k-${rng.int(1e9)}`]), policy: rng.pick(ENUMS), quiesceTimeoutMs: num(rng), requestedBy: text() };
    case "GetJob":
      return { guestId: guest(), jobId: jobId(rng, w) };
    case "ListJobs":
      return { guestId: guest(), activeOnly: rng.chance(0.5), limit: num(rng), ...(rng.chance(0.3) ? { pageToken: text() } : {}) };
    case "CancelJob":
      return { guestId: guest(), jobId: jobId(rng, w), reason: text() };
    case "RegisterStack":
    case "UnregisterStack":
      return { guestId: guest(), stack: stack(), controllerId: stringFor(rng, w, ["ctl-1", "ctl-2"]), leaseTtlMs: num(rng) };
    case "AcknowledgeQuiesce":
      return { guestId: guest(), jobId: jobId(rng, w), stack: stack(), stoppedAt: date(rng) };
    case "RefuseQuiesce":
      return { guestId: guest(), jobId: jobId(rng, w), stack: stack(), reason: text() };
    case "ReportResumed":
      return { guestId: guest(), jobId: jobId(rng, w), stack: stack(), downtimeMs: num(rng, true), resumedAt: date(rng), early: rng.chance(0.5), ...(rng.chance(0.3) ? { postStep: text() } : {}) };
    case "WatchEvents":
    case "WatchEventBatches":
      return { guestId: guest(), jobId: rng.chance(0.7) ? "" : jobId(rng, w), afterSeq: num(rng, true), ...(rng.chance(0.2) ? { groupRunId: text() } : {}) };
    case "StartGroupBackup":
      // Now and then a well-formed ad-hoc group of every guest, so real runs exist to get and cancel.
      if (rng.chance(0.25)) return { groupId: "", guestIds: [...w.guests], idempotencyKey: `g-${rng.int(1e9)}`, requestedBy: "fuzz" };
      return { groupId: rng.chance(0.5) ? "" : text(), guestIds: Array.from({ length: rng.int(4) }, guest), idempotencyKey: stringFor(rng, w, [`g-${rng.int(1e9)}`]), policy: rng.pick(ENUMS), quiesceTimeoutMs: num(rng), requestedBy: text() };
    case "GetGroup":
      return { groupRunId: rng.chance(0.5) ? groupRunId(rng, w) : text() };
    case "ListGroups":
      return { guestId: guest(), activeOnly: rng.chance(0.5), limit: num(rng), ...(rng.chance(0.3) ? { pageToken: text() } : {}) };
    case "CancelGroup":
      return { groupRunId: groupRunId(rng, w), reason: text() };
    // Restore points: shaped point ids (b- + a job id's shape), job ids (malformed here) and hostile strings.
    case "VerifyPoint":
      return { guestId: guest(), pointId: stringFor(rng, w, [shapedId(rng, "b"), shapedId(rng, "j"), `b-${"0".repeat(26)}`]) };
    case "ListVerifications":
      return { guestId: guest(), pointId: rng.chance(0.5) ? "" : stringFor(rng, w, [shapedId(rng, "b"), `b-${"0".repeat(26)}`]) };
    case "ListSchedules":
      return { scheduleId: rng.chance(0.5) ? "" : text(), ticks: num(rng) };
    case "ListBackups":
      return { guestId: guest(), limit: num(rng) };
    case "GetBackup":
    case "ProtectBackup":
    case "UnprotectBackup":
      return { guestId: guest(), pointId: stringFor(rng, w, [shapedId(rng, "b"), shapedId(rng, "j"), `b-${"0".repeat(26)}`]) };
    case "PrunePoints":
      // Never a real prune of the fuzz world's points: the dry run only.
      return { guestId: guest(), dryRun: true };
    default:
      return {};
  }
}

interface Codec {
  fromPartial(p: Record<string, unknown>): unknown;
  encode(m: unknown): { finish(): Uint8Array };
}

function codecOf(rpc: string): Codec | undefined {
  return (proto as unknown as Record<string, Codec | undefined>)[requestMessageOf(rpc)];
}

/** The request of `rpc` as bytes: a valid encoding of hostile fields, or malformed bytes. */
export function requestBytes(rpc: string, rng: Rng, w: FuzzWorld): { bytes: Buffer; raw: boolean } {
  const codec = codecOf(rpc);
  const encoded = codec ? Buffer.from(codec.encode(codec.fromPartial(partialRequest(rpc, rng, w))).finish()) : Buffer.alloc(0);
  if (!codec || rng.chance(0.7)) return { bytes: encoded, raw: false };
  switch (rng.int(6)) {
    case 0:
      return { bytes: rng.bytes(rng.int(64)), raw: true };
    case 1:
      return { bytes: encoded.subarray(0, Math.max(0, encoded.length - 1 - rng.int(4))), raw: true };
    case 2: {
      const flipped = Buffer.from(encoded);
      for (let i = 0; i < 3 && flipped.length > 0; i++) flipped[rng.int(flipped.length)] = rng.int(256);
      return { bytes: flipped, raw: true };
    }
    case 3:
      // field 1 (a string in every request that has one) sent as a varint, field 2 as fixed64
      return { bytes: Buffer.from([0x08, 0x96, 0x01, 0x11, 1, 2, 3, 4, 5, 6, 7, 8]), raw: true };
    case 4:
      // every field number 1..8 as a varint of 2^63: beyond 2^53 wherever the field is a uint64
      return { bytes: Buffer.concat(Array.from({ length: 8 }, (_, i) => Buffer.from([((i + 1) << 3) | 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))), raw: true };
    default:
      // a length-delimited field claiming more bytes than follow
      return { bytes: Buffer.from([0x0a, 0xff, 0xff, 0x03, 0x41]), raw: true };
  }
}
