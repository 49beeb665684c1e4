// The three-node lease simulation at a small size (the full 10,000 ticks: npm run bench:lease).
import { strict as assert } from "node:assert";
import { it } from "node:test";
import { describe as summary, runSimulation } from "./simulation.js";

it("three nodes in network namespaces, kill -9, SIGSTOP past the lease, quorum loss: 0 double runs, 0 unreported misses", async () => {
  const r = await runSimulation({ ticks: Number(process.env.LULL_SIM_TICKS ?? 240), seed: 7 });
  console.log(summary(r));
  assert.ok(r.ran > r.ticks / 3, `most ticks run (${r.ran} of ${r.ticks})`);
  assert.ok(r.kills + r.pauses + r.quorumLosses > 0, "chaos happened");
  assert.equal(r.doubleRuns, 0, "double runs");
  assert.equal(r.unreportedMisses, 0, "unreported misses");
  assert.equal(r.staleHolderActions, 0, "a holder acted after another node took over");
  for (const g of r.stopGapsMs) assert.ok(g <= 60_000, `work stopped ${g} ms after the lease loss was found`);
});
