// The watchers of the fan-out benchmark (fanout.ts), run in client threads of their own: every
// thread is a worker with its own event loop and its own gRPC channels, so N TLS streams are not
// all decoded by one thread of the bench, which would then measure itself rather than the agent.
// Each thread reports its event-loop utilisation, so the bench can say whether its clients kept up.
//
// A watcher is a controller over TLS (its own per-stack token, a registration lease, its guest's
// events, an acknowledgement of each quiesce) or a dashboard on the unix socket (every event). As
// lull-controller does, a controller registers once, then its stream holds the lease (where the
// agent says it keeps leases by stream) and asks for its own stack's events only (`for_stack`);
// a `legacy` one renews by RegisterStack every 5 s (a third of the default TTL) and follows every
// event of its guest, as controllers did before. The delay of a delivery is its receipt time here
// minus the event's `at`, the agent's event time.
import { performance } from "node:perf_hooks";
import { Worker, isMainThread, parentPort, type MessagePort } from "node:worker_threads";
import type { ClientReadableStream } from "@grpc/grpc-js";
import { EventKind, Phase, type Event } from "@lull/proto";
import { concernsStack } from "@lull/shared";
import { connectTestClient, type TestAgentClient } from "../support/index.js";

export interface WatcherSpec {
  transport: "tls" | "socket";
  /** A controller's guest; a dashboard has none (every event). */
  guest?: string | undefined;
  stack: string;
  /** The per-stack token of a controller. */
  token?: string | undefined;
  /** A controller as before: its lease renewed by RegisterStack every 5 s, every event of its guest. */
  legacy?: boolean | undefined;
}

/** An event of the window as the bench checks its delivery: seq, guest, kind, stack. */
export type DeliveredEvent = [seq: number, guest: string, kind: EventKind, stack: string];

export interface AgentTarget {
  address: string;
  socketAddress: string;
  fingerprint: string | undefined;
}

/** Main thread → client thread. */
type Request =
  | { type: "open"; id: number; agent: AgentTarget; specs: WatcherSpec[]; afterSeq: number }
  | { type: "window"; id: number; open: boolean }
  | { type: "missing"; id: number; events: DeliveredEvent[] }
  | { type: "report"; id: number }
  | { type: "close"; id: number };

export interface ThreadReport {
  tls: number[];
  socket: number[];
  /** Per event (seq), its earliest delivery's delay in this thread: how soon the fan-out began. */
  first: Array<[seq: number, delayMs: number]>;
  refused: number;
  errors: string[];
  /** Event-loop utilisation of this client thread while the window was open (0…1). */
  utilisation: number;
}

/** Client threads, each running a share of the watchers; the main thread drives them. */
export class WatcherThreads {
  private readonly threads: Array<{ worker: Worker; pending: Map<number, (value: unknown) => void> }> = [];
  private nextId = 1;

  constructor(count: number) {
    for (let i = 0; i < count; i++) {
      const worker = new Worker(new URL(import.meta.url));
      const pending = new Map<number, (value: unknown) => void>();
      worker.on("message", (m: { id: number; value: unknown }) => {
        pending.get(m.id)?.(m.value);
        pending.delete(m.id);
      });
      worker.on("error", (err) => {
        for (const resolve of pending.values()) resolve({ error: String(err) });
        pending.clear();
      });
      this.threads.push({ worker, pending });
    }
  }

  get count(): number {
    return this.threads.length;
  }

  private ask<T>(thread: number, request: Omit<Request, "id"> & { type: Request["type"] }): Promise<T> {
    const t = this.threads[thread]!;
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      t.pending.set(id, (value) => {
        const v = value as { error?: string } | undefined;
        if (v && typeof v === "object" && "error" in v && typeof v.error === "string") reject(new Error(`client thread ${thread}: ${v.error}`));
        else resolve(value as T);
      });
      t.worker.postMessage({ ...request, id });
    });
  }

  private all<T>(make: (thread: number) => Omit<Request, "id">): Promise<T[]> {
    return Promise.all(this.threads.map((_, i) => this.ask<T>(i, make(i))));
  }

  /** Opens the watchers, spread over the threads round-robin; resolves when every stream has its headers. */
  async open(agent: AgentTarget, specs: readonly WatcherSpec[], afterSeq: number): Promise<void> {
    await this.all((t) => ({ type: "open", agent, specs: specs.filter((_, i) => i % this.threads.length === t), afterSeq }));
  }

  async window(open: boolean): Promise<void> {
    await this.all(() => ({ type: "window", open }));
  }

  /** Deliveries of `events` that some watcher asked for and has not received yet. */
  async missing(events: DeliveredEvent[]): Promise<number> {
    return (await this.all<number>(() => ({ type: "missing", events }))).reduce((a, b) => a + b, 0);
  }

  async report(): Promise<ThreadReport[]> {
    return this.all<ThreadReport>(() => ({ type: "report" }));
  }

  /** Closes every watcher (keeps the threads for the next set). */
  async closeWatchers(): Promise<void> {
    await this.all(() => ({ type: "close" }));
  }

  async terminate(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }
}

class Watcher {
  readonly seqs = new Set<number>();
  stream: ClientReadableStream<Event> | undefined;
  private renew: NodeJS.Timeout | undefined;
  /** The agent keeps this watcher's lease while its stream holds it. */
  private streamHolds = false;
  constructor(
    readonly client: TestAgentClient,
    readonly spec: WatcherSpec,
    readonly state: ThreadState,
  ) {}

  async register(): Promise<void> {
    const guest = this.spec.guest;
    if (guest === undefined) return;
    const once = async () => {
      try {
        return await this.client.api.registerStack({ guestId: guest, stack: this.spec.stack, controllerId: this.controllerId, leaseTtlMs: 0 });
      } catch (err) {
        this.state.refused += 1;
        this.state.errors.push(String((err as Error).message));
        return undefined;
      }
    };
    const first = await once();
    this.streamHolds = this.spec.legacy !== true && first?.streamKeepsLease === true;
    if (!this.streamHolds) this.renew = setInterval(() => void once(), 5_000);
  }

  /** A current controller asks only for what it acts on. */
  private get ownStackOnly(): boolean {
    return this.spec.guest !== undefined && this.spec.legacy !== true;
  }

  /** Whether this watcher's stream should carry `event`. */
  expects([, guest, kind, stack]: DeliveredEvent): boolean {
    if (this.spec.guest === undefined) return true;
    if (guest !== this.spec.guest) return false;
    return !this.ownStackOnly || concernsStack({ kind, stack }, this.spec.stack);
  }

  private get controllerId(): string {
    return `bench-${this.spec.stack}`;
  }

  open(afterSeq: number): Promise<void> {
    const holdLease = this.streamHolds ? { holdLease: { stack: this.spec.stack, controllerId: this.controllerId, leaseTtlMs: 0 } } : {};
    const forStack = this.ownStackOnly ? { forStack: this.spec.stack } : {};
    const stream = this.client.raw.watchEvents({ guestId: this.spec.guest ?? "", jobId: "", afterSeq, ...holdLease, ...forStack });
    this.stream = stream;
    const delays = this.spec.transport === "tls" ? this.state.tls : this.state.socket;
    return new Promise<void>((resolve, reject) => {
      stream.once("metadata", () => resolve());
      stream.on("data", (e: Event) => {
        const now = Date.now();
        if (this.state.windowOpen) {
          const delay = now - e.at!.getTime();
          delays.push(delay);
          const first = this.state.first.get(e.seq);
          if (first === undefined || delay < first) this.state.first.set(e.seq, delay);
        }
        this.seqs.add(e.seq);
        const guest = this.spec.guest;
        if (guest !== undefined && e.kind === EventKind.EVENT_KIND_PHASE && e.phase === Phase.PHASE_QUIESCING) {
          this.client.api.acknowledgeQuiesce({ guestId: guest, jobId: e.jobId, stack: this.spec.stack, stoppedAt: new Date(), alreadyStopped: false }).catch((err: Error) => {
            this.state.errors.push(`ack: ${err.message}`);
          });
        }
      });
      stream.on("error", (err: Error) => {
        if (!/CANCELLED/.test(err.message)) this.state.errors.push(`stream: ${err.message}`);
        reject(err);
      });
    });
  }

  close(): void {
    clearInterval(this.renew);
    this.stream?.cancel();
    this.client.close();
  }
}

interface ThreadState {
  tls: number[];
  socket: number[];
  first: Map<number, number>;
  refused: number;
  errors: string[];
  windowOpen: boolean;
  elu: ReturnType<typeof performance.eventLoopUtilization> | undefined;
  utilisation: number;
}

function serve(port: MessagePort): void {
  let watchers: Watcher[] = [];
  let state: ThreadState = { tls: [], socket: [], first: new Map(), refused: 0, errors: [], windowOpen: false, elu: undefined, utilisation: NaN };
  const handle = async (m: Request): Promise<unknown> => {
    switch (m.type) {
      case "open": {
        // 50 at a time, as a node's controllers come up.
        for (let i = 0; i < m.specs.length; i += 50) {
          await Promise.all(
            m.specs.slice(i, i + 50).map(async (spec) => {
              const client =
                spec.transport === "socket"
                  ? connectTestClient(m.agent.socketAddress)
                  : connectTestClient(m.agent.address, 20_000, { token: spec.token ?? "", tls: { fingerprint: m.agent.fingerprint } });
              const w = new Watcher(client, spec, state);
              watchers.push(w);
              await w.register();
              await w.open(m.afterSeq);
            }),
          );
        }
        return true;
      }
      case "window":
        state.windowOpen = m.open;
        if (m.open) state.elu = performance.eventLoopUtilization();
        else if (state.elu) state.utilisation = performance.eventLoopUtilization(state.elu).utilization;
        return true;
      case "missing":
        return watchers.reduce((n, w) => n + m.events.filter((e) => w.expects(e) && !w.seqs.has(e[0])).length, 0);
      case "report":
        return { tls: state.tls, socket: state.socket, first: [...state.first], refused: state.refused, errors: state.errors.slice(0, 5), utilisation: state.utilisation } satisfies ThreadReport;
      case "close":
        for (const w of watchers) w.close();
        watchers = [];
        state = { tls: [], socket: [], first: new Map(), refused: 0, errors: [], windowOpen: false, elu: undefined, utilisation: NaN };
        return true;
    }
  };
  port.on("message", (m: Request) => {
    handle(m).then(
      (value) => port.postMessage({ id: m.id, value }),
      (err: unknown) => port.postMessage({ id: m.id, value: { error: err instanceof Error ? err.message : String(err) } }),
    );
  });
}

if (!isMainThread && parentPort) serve(parentPort);
