// A small cluster network for tests: one network namespace per node and one for the switch (a
// bridge), each node on the bridge through a veth pair with its own address, and the test's own
// namespace routed to the nodes' subnet through the switch. Nothing is bridged or forwarded in the
// test's namespace (its firewall never sees the nodes' traffic). Needs root and iproute2.
import { execFileSync } from "node:child_process";

export interface NodeNet {
  ns: string;
  ip: string;
}

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** Why namespaces cannot be made here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "root (ip netns)";
  try {
    execFileSync("ip", ["-V"], { stdio: "ignore" });
  } catch {
    return "iproute2 (the ip command)";
  }
  return undefined;
}

export class ClusterNet {
  readonly nodes: NodeNet[] = [];
  private readonly switchNs: string;
  private readonly subnet: string;
  private readonly prefix: string;

  private constructor(
    private readonly tag: string,
    count: number,
  ) {
    this.switchNs = `lulltr-${tag}-sw`;
    // One /24 per test process, so concurrent runs do not share addresses.
    const k = 20 + (process.pid % 200);
    this.subnet = `10.248.${k}`;
    this.prefix = `10.249.${k}`;
    for (let i = 1; i <= count; i++) this.nodes.push({ ns: `lulltr-${tag}-${i}`, ip: `${this.subnet}.${i}` });
  }

  static create(count: number): ClusterNet {
    const net = new ClusterNet(String(process.pid), count);
    try {
      net.build();
    } catch (err) {
      net.destroy();
      throw err;
    }
    return net;
  }

  private link(kind: "n" | "s" | "h" | "w", i = 0): string {
    return `ltr${this.tag}${kind}${i}`.slice(0, 15);
  }

  private build(): void {
    const sw = this.switchNs;
    ip("netns", "add", sw);
    ip("-n", sw, "link", "set", "lo", "up");
    ip("-n", sw, "link", "add", "br0", "type", "bridge");
    ip("-n", sw, "addr", "add", `${this.subnet}.254/24`, "dev", "br0");
    ip("-n", sw, "link", "set", "br0", "up");
    execFileSync("ip", ["netns", "exec", sw, "sysctl", "-qw", "net.ipv4.ip_forward=1"], { stdio: "ignore" });
    this.nodes.forEach((n, idx) => {
      const i = idx + 1;
      ip("netns", "add", n.ns);
      ip("link", "add", this.link("n", i), "type", "veth", "peer", "name", this.link("s", i));
      ip("link", "set", this.link("n", i), "netns", n.ns);
      ip("link", "set", this.link("s", i), "netns", sw);
      ip("-n", sw, "link", "set", this.link("s", i), "master", "br0", "up");
      ip("-n", n.ns, "link", "set", "lo", "up");
      ip("-n", n.ns, "addr", "add", `${n.ip}/24`, "dev", this.link("n", i));
      ip("-n", n.ns, "link", "set", this.link("n", i), "up");
      ip("-n", n.ns, "route", "add", "default", "via", `${this.subnet}.254`);
    });
    // The test's namespace reaches the nodes through the switch.
    ip("link", "add", this.link("h"), "type", "veth", "peer", "name", this.link("w"));
    ip("link", "set", this.link("w"), "netns", sw);
    ip("addr", "add", `${this.prefix}.1/30`, "dev", this.link("h"));
    ip("link", "set", this.link("h"), "up");
    ip("-n", sw, "addr", "add", `${this.prefix}.2/30`, "dev", this.link("w"));
    ip("-n", sw, "link", "set", this.link("w"), "up");
    ip("route", "add", `${this.subnet}.0/24`, "via", `${this.prefix}.2`);
  }

  /** Cuts node `index` (0-based) off the switch, or connects it again. */
  setLink(index: number, up: boolean): void {
    ip("-n", this.switchNs, "link", "set", this.link("s", index + 1), up ? "up" : "down");
  }

  destroy(): void {
    const quiet = (...args: string[]) => {
      try {
        ip(...args);
      } catch {
        // already gone (with its namespace)
      }
    };
    quiet("link", "del", this.link("h"));
    for (const n of this.nodes) quiet("netns", "del", n.ns);
    quiet("netns", "del", this.switchNs);
  }
}

/**
 * Removes the namespaces a run that died without its clean-up left (kill -9, a crash): those named
 * after a process that no longer exists. A live run's namespaces are left alone. Returns their names.
 */
export function removeStaleNamespaces(): string[] {
  const listed = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  const stale = listed
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => {
      const pid = /^lulltr-(\d+)-/.exec(name)?.[1];
      if (pid === undefined) return false;
      try {
        process.kill(Number(pid), 0);
        return false;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === "ESRCH";
      }
    });
  for (const name of stale) {
    try {
      ip("netns", "del", name);
    } catch {
      // gone meanwhile
    }
  }
  return stale;
}
