// npm run bench:lease — the full three-node simulation (10,000 ticks by default; LULL_SIM_TICKS).
import { describe, runSimulation } from "./simulation.js";

const ticks = Number(process.env.LULL_SIM_TICKS ?? 10_000);
const r = await runSimulation({ ticks, seed: Number(process.env.LULL_SIM_SEED ?? 11), log: (l) => console.error(l) });
console.log(describe(r));
console.log(`targets: double runs 0 (got ${r.doubleRuns}), unreported misses 0 (got ${r.unreportedMisses}), stale-holder actions 0 (got ${r.staleHolderActions}), max stop gap ≤ 60 s`);
process.exitCode = r.doubleRuns === 0 && r.unreportedMisses === 0 ? 0 : 1;
