// A watcher of the agent's events, as an operator's `lullctl events --follow` or a controller
// would be: WatchEvents from sequence 0, and when the stream breaks (agent killed, restarted),
// again after the last sequence it saw. It keeps everything it received, in order, so a test can
// check that a watcher missed nothing and got nothing twice, and that it was told every job's end.
import type { ClientReadableStream } from "@grpc/grpc-js";
import { EventKind, WatchEventsRequest, type AgentClient, type Event } from "@lull/proto";
import { connectAgent, createAgentClient, isTerminal } from "@lull/shared";
import { sleep } from "./temp.js";

export interface EventFollowerOptions {
  address: string;
  /** Only this guest's events (default: every guest). */
  guestId?: string;
  /** Pause before reconnecting after the stream broke (default 200 ms). */
  retryMs?: number;
}

export class EventFollower {
  /** Every event received, in order of arrival (duplicates included, if any). */
  readonly events: Event[] = [];
  /** How many times the stream broke or ended and was opened again. */
  breaks = 0;
  private lastSeq = 0;
  private readonly client: AgentClient;
  private call: ClientReadableStream<Event> | undefined;
  private stopped = false;
  private readonly listeners = new Set<() => void>();
  private readonly running: Promise<void>;

  constructor(private readonly o: EventFollowerOptions) {
    this.client = createAgentClient({ address: o.address });
    this.running = this.loop();
  }

  /** Sequence numbers in order of arrival. */
  seqs(): number[] {
    return this.events.map((e) => e.seq);
  }

  /** Sequence numbers that arrived more than once. */
  duplicates(): number[] {
    const seen = new Set<number>();
    const twice: number[] = [];
    for (const e of this.events) {
      if (seen.has(e.seq)) twice.push(e.seq);
      seen.add(e.seq);
    }
    return twice;
  }

  /** The terminal PHASE event of `jobId`, if the follower has seen it. */
  terminalEventOf(jobId: string): Event | undefined {
    return this.events.find((e) => e.jobId === jobId && e.kind === EventKind.EVENT_KIND_PHASE && isTerminal(e.phase));
  }

  /** Resolves with the first received event matching `predicate`; rejects after `timeoutMs`. */
  waitFor(what: string, predicate: (event: Event) => boolean, timeoutMs: number): Promise<Event> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.events.find(predicate);
        if (!hit) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(hit);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`the event follower saw no ${what} within ${timeoutMs} ms (last seq ${this.lastSeq}, ${this.breaks} breaks)`));
      }, timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.call?.cancel();
    await this.running;
    this.client.close();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      await this.streamOnce().catch(() => undefined);
      if (this.stopped) break;
      this.breaks += 1;
      await sleep(this.o.retryMs ?? 200);
    }
  }

  private streamOnce(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const call = this.client.watchEvents(WatchEventsRequest.fromPartial({ guestId: this.o.guestId ?? "", afterSeq: this.lastSeq }));
      this.call = call;
      call.on("data", (event: Event) => {
        this.events.push(event);
        if (event.seq > this.lastSeq) this.lastSeq = event.seq;
        this.listeners.forEach((l) => l());
      });
      call.on("error", reject);
      call.on("end", resolve);
    });
  }
}

/**
 * Every persisted event of the agent (replayed from sequence 0 up to its last sequence), as a
 * reference to compare a follower's list with. Rejects after `timeoutMs`.
 */
export async function readAllEvents(address: string, timeoutMs: number): Promise<Event[]> {
  const api = connectAgent({ address }, { callTimeoutMs: timeoutMs });
  const client = api.raw;
  try {
    const info = await api.getAgentInfo();
    const events: Event[] = [];
    if (info.lastEventSeq === 0) return events;
    await new Promise<void>((resolve, reject) => {
      const call = client.watchEvents(WatchEventsRequest.fromPartial({ afterSeq: 0 }));
      const timer = setTimeout(() => {
        call.cancel();
        reject(new Error(`replayed ${events.length} events, not up to seq ${info.lastEventSeq}, within ${timeoutMs} ms`));
      }, timeoutMs);
      call.on("data", (event: Event) => {
        events.push(event);
        if (event.seq >= info.lastEventSeq) {
          clearTimeout(timer);
          call.cancel();
          resolve();
        }
      });
      call.on("error", (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    return events;
  } finally {
    api.close();
  }
}
