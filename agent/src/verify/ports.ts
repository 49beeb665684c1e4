// A spare port for a replica's server: one of `verify.ports` that no other replica of this agent
// holds (their state files say which) and that nothing on this host listens on (a bind test).
import { readFile, readdir } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { LullError } from "@lull/shared";

const free = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });

export async function pickSparePort(range: { from: number; to: number }, scratchDir: string): Promise<number> {
  const held = new Set<number>();
  for (const name of await readdir(scratchDir).catch(() => [] as string[])) {
    const state = await readFile(join(scratchDir, name, "replica.json"), "utf8").catch(() => undefined);
    if (state) held.add((JSON.parse(state) as { port: number }).port);
  }
  const span = range.to - range.from + 1;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const port = range.from + ((start + i) % span);
    if (!held.has(port) && (await free(port))) return port;
  }
  throw new LullError("LULL_E_CONFIG_INVALID", `verify.ports ${range.from}-${range.to}: no spare port left; widen the range`);
}
