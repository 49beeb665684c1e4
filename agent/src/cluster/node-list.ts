// What the cluster says right now, as the cluster listener needs it: the member list
// (`<root>/.members`) and the cluster CA (`<root>/pve-root-ca.pem`), re-read every `refreshMs`.
// A node not in the list is refused; when the files cannot be read for `staleAfterMs`, every node
// is refused (the last good list is not trusted forever).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CLUSTER_CA_FILE, LullError, readMembers, type Clock, type Logger } from "@lull/shared";

export interface NodeListOptions {
  root: string;
  clock: Clock;
  log: Logger;
  refreshMs?: number;
  staleAfterMs?: number;
}

export const NODE_LIST_REFRESH_MS = 2_000;
export const NODE_LIST_STALE_MS = 30_000;

export class NodeList {
  private names = new Set<string>();
  private ca = "";
  private readAt = Number.NEGATIVE_INFINITY;
  private failing = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly refreshMs: number;
  private readonly staleAfterMs: number;

  constructor(private readonly o: NodeListOptions) {
    this.refreshMs = o.refreshMs ?? NODE_LIST_REFRESH_MS;
    this.staleAfterMs = o.staleAfterMs ?? NODE_LIST_STALE_MS;
  }

  /** Reads once (throws when that fails), then keeps re-reading. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), this.refreshMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    try {
      const [members, ca] = await Promise.all([readMembers(this.o.root), readFile(join(this.o.root, CLUSTER_CA_FILE), "utf8")]);
      this.names = new Set(members.nodes.map((n) => n.name));
      this.ca = ca;
      this.readAt = this.o.clock.now();
      if (this.failing) this.o.log.info({ nodes: [...this.names] }, "cluster member list readable again");
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.o.log.warn({ root: this.o.root, err: (err as Error).message }, "cluster member list unreadable");
      this.failing = true;
      throw err;
    }
  }

  /** The cluster CA's PEM; throws while the list is stale. */
  caPem(): string {
    this.fresh();
    return this.ca;
  }

  /** Throws LULL_E_NODE_CREDENTIAL unless `node` is a member (and the list is fresh). */
  check(node: string): void {
    this.fresh();
    if (!this.names.has(node)) {
      throw new LullError("LULL_E_NODE_CREDENTIAL", `node ${node} is not in the cluster's member list (.members); a node removed from the cluster has no node credential`);
    }
  }

  private fresh(): void {
    const age = this.o.clock.now() - this.readAt;
    if (age > this.staleAfterMs) {
      throw new LullError("LULL_E_NODE_CREDENTIAL", `the cluster's member list has not been readable for ${Math.round(age / 1000)} s; node credentials are refused until it is (is pmxcfs running?)`);
    }
  }
}
