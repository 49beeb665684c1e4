// The fuzzer's side of the wire: a generic gRPC client per credential that sends request bytes
// as they are (so malformed messages reach the agent), with the bearer token — or a broken one —
// on every call; and the checks of what a guest token got back.
import { Client, Metadata, status, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import * as proto from "@lull/proto";
import { agentChannelCredentials, bearerTokenInterceptor } from "@lull/shared";

export interface Credential {
  name: string;
  /** `authorization` value: a real token, a broken one, or none. */
  token?: string;
  /** The guest a valid guest token is scoped to. */
  guestId?: string;
  /** Whether the agent should accept this credential at all. */
  valid: boolean;
}

const identity = (b: Buffer) => b;

/** RPCs whose request message is not `<Rpc>Request`. */
const REQUEST_MESSAGES: Readonly<Record<string, string>> = { WatchEventBatches: "WatchEventsRequest" };

/** The name of the request message of `rpc` in @lull/proto. */
export const requestMessageOf = (rpc: string): string => REQUEST_MESSAGES[rpc] ?? `${rpc}Request`;

export function credentialClient(address: string, fingerprint: string, credential: Credential): Client {
  return new Client(address, agentChannelCredentials({ fingerprint }), {
    ...(credential.token !== undefined ? { interceptors: [bearerTokenInterceptor(credential.token)] } : {}),
    "grpc.max_receive_message_length": 16 * 1024 * 1024,
  });
}

export interface CallResult {
  status: string;
  details: string;
  /** Response bytes (unary) or the first message of a stream. */
  response?: Buffer;
}

const statusName = (code: number) => (status as unknown as Record<number, string>)[code] ?? `STATUS_${code}`;

/** One unary call with raw bytes. */
export function unaryCall(client: Client, path: string, bytes: Buffer, timeoutMs: number): Promise<CallResult> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, identity, identity, bytes, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
      if (err) resolve({ status: statusName((err as ServiceError).code), details: (err as ServiceError).details ?? "" });
      else resolve({ status: "OK", details: "", ...(res ? { response: res } : {}) });
    });
  });
}

/**
 * A server stream with raw bytes: its status when it fails; when the agent admits it (headers, or
 * a first message) and no error follows within `graceMs`, it counts as accepted (OK) and we cancel
 * it. No answer at all within `timeoutMs` is NO_ANSWER.
 */
export function streamCall(client: Client, path: string, bytes: Buffer, graceMs: number, timeoutMs = 10_000): Promise<CallResult> {
  return new Promise((resolve) => {
    const call: ClientReadableStream<Buffer> = client.makeServerStreamRequest(path, identity, identity, bytes, new Metadata(), {});
    let first: Buffer | undefined;
    let done = false;
    let grace: NodeJS.Timeout | undefined;
    const finish = (r: CallResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(grace);
      call.cancel();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ status: "NO_ANSWER", details: `no headers, message or status within ${timeoutMs} ms` }), timeoutMs);
    const admitted = () => {
      grace ??= setTimeout(() => finish({ status: "OK", details: "admitted", ...(first ? { response: first } : {}) }), graceMs);
    };
    call.on("metadata", admitted);
    call.on("data", (m: Buffer) => {
      first ??= m;
      admitted();
    });
    call.on("error", (err: ServiceError) => {
      if (err.code === status.CANCELLED && done) return;
      finish({ status: statusName(err.code), details: err.details ?? "" });
    });
    call.on("end", () => finish({ status: "OK", details: "ended", ...(first ? { response: first } : {}) }));
  });
}

/** `grpc.health.v1.Health/Check` for the whole server: "SERVING" or what came instead. */
export async function healthOf(client: Client): Promise<string> {
  const r = await unaryCall(client, "/grpc.health.v1.Health/Check", Buffer.alloc(0), 5_000);
  if (r.status !== "OK") return `${r.status} ${r.details}`;
  const code = r.response?.[0] === 0x08 ? r.response[1] : 0;
  return code === 1 ? "SERVING" : `status ${code}`;
}

interface Decoder {
  decode(b: Uint8Array): unknown;
}

function decode<T>(name: string, bytes: Buffer | undefined): T | undefined {
  const codec = (proto as unknown as Record<string, Decoder | undefined>)[name];
  if (!codec || !bytes) return undefined;
  try {
    return codec.decode(bytes) as T;
  } catch {
    return undefined;
  }
}

/** The guests a request names (as decoded by the agent's own codec). */
export function guestsNamed(rpc: string, bytes: Buffer): string[] | undefined {
  const req = decode<{ guestId?: string; guestIds?: string[] }>(requestMessageOf(rpc), bytes);
  if (!req) return undefined;
  return [...(req.guestId ? [req.guestId] : []), ...(req.guestIds ?? [])];
}

/**
 * Why a successful answer to a guest token is a leak, or undefined: the request reached beyond the
 * token's guest, or the response shows another guest's jobs, events, guests, restore points or
 * verifications.
 */
export function scopeLeak(rpc: string, bytes: Buffer, result: CallResult, guestId: string): string | undefined {
  if (result.status !== "OK") return undefined;
  const named = guestsNamed(rpc, bytes) ?? [];
  if (rpc !== "GetAgentInfo" && rpc !== "GetGroup" && (named.length === 0 || named.some((g) => g !== guestId))) {
    return `${rpc} for ${named.join(",") || "every guest"} accepted`;
  }
  const foreign = (ids: (string | undefined)[]) => ids.filter((g) => g !== undefined && g !== guestId);
  const r = result.response;
  const seen: (string | undefined)[] =
    rpc === "GetAgentInfo"
      ? (decode<proto.AgentInfo>("AgentInfo", r)?.guests ?? []).map((g) => g.id)
      : rpc === "ListJobs"
        ? (decode<proto.ListJobsResponse>("ListJobsResponse", r)?.jobs ?? []).map((j) => j.guestId)
        : rpc === "GetJob" || rpc === "CancelJob"
          ? [decode<proto.Job>("Job", r)?.guestId]
          : rpc === "WatchEvents" && r
            ? [decode<proto.Event>("Event", r)?.guestId || undefined]
            : rpc === "WatchEventBatches" && r
              ? (decode<proto.EventBatch>("EventBatch", r)?.events ?? []).map((e) => e.guestId || undefined)
            : rpc === "GetGroup"
              ? (decode<{ guestIds?: string[] }>("GroupRun", r)?.guestIds ?? [])
              : rpc === "CancelGroup"
                ? (decode<{ group?: { guestIds?: string[] } }>("CancelGroupResponse", r)?.group?.guestIds ?? [])
                : rpc === "ListGroups"
                  ? (decode<{ groups?: { guestIds?: string[] }[] }>("ListGroupsResponse", r)?.groups ?? []).flatMap((g) => g.guestIds ?? [])
                  : rpc === "ListBackups"
                    ? (decode<{ backups?: { guestId?: string }[] }>("ListBackupsResponse", r)?.backups ?? []).map((b) => b.guestId)
                    : rpc === "GetBackup" || rpc === "ProtectBackup" || rpc === "UnprotectBackup"
                      ? [decode<{ guestId?: string }>("Backup", r)?.guestId]
                      : rpc === "ListVerifications"
                        ? (decode<{ verifications?: { guestId?: string }[] }>("ListVerificationsResponse", r)?.verifications ?? []).map((v) => v.guestId)
                        : rpc === "VerifyPoint"
                          ? [decode<{ guestId?: string }>("Verification", r)?.guestId]
                          : [];
  const other = foreign(seen);
  return other.length > 0 ? `${rpc} showed guest ${other.join(",")}` : undefined;
}
