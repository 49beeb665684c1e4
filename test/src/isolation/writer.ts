// The writer app of the isolation test: one process per service, writing a timestamped record
// every `intervalMs` and acknowledging each in its ledger once it is durable.
//   node writer.js <sqlite|log|objects> <dataDir> <runDir> [intervalMs]
// `<runDir>` (outside the backed-up data) gets the ledger `acks.jsonl` and, once the first record
// is acknowledged, the pid file `writer.pid`. SIGTERM/SIGINT: the current write finishes (writes
// are synchronous), the writer closes its files, removes the pid file and exits 0.
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { isServiceKind, LedgerWriter, readLedger, runFiles } from "./ledger.js";
import { openServiceWriter } from "./services.js";

function log(fields: Record<string, unknown>, msg: string): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields, msg })}\n`);
}

function main(): void {
  const [kind, dataDir, runDir, interval] = process.argv.slice(2);
  const intervalMs = Number(interval ?? 3);
  if (!kind || !isServiceKind(kind) || !dataDir || !runDir || !Number.isInteger(intervalMs) || intervalMs < 0) {
    process.stderr.write("usage: writer.js <sqlite|log|objects> <dataDir> <runDir> [intervalMs]\n");
    process.exit(2);
  }
  const files = runFiles(runDir);
  const service = openServiceWriter(kind, dataDir);
  const ledger = new LedgerWriter(files.ledger);
  let nextId = Math.max(service.maxId(), readLedger(files.ledger).at(-1)?.id ?? 0) + 1;
  const firstId = nextId;

  const writeOne = () => {
    const record = { id: nextId, at: Date.now() };
    service.write(record);
    ledger.ack({ ...record, ackedAt: Date.now() });
    nextId++;
  };
  writeOne();
  writeFileSync(`${files.pid}.tmp`, `${process.pid}\n`);
  renameSync(`${files.pid}.tmp`, files.pid);
  log({ pid: process.pid, kind, firstId, intervalMs }, "writer started");

  let timer: NodeJS.Timeout | undefined;
  const loop = () => {
    writeOne();
    timer = setTimeout(loop, intervalMs);
  };
  timer = setTimeout(loop, intervalMs);
  const shutdown = (signal: string) => {
    clearTimeout(timer);
    service.close();
    ledger.close();
    rmSync(files.pid, { force: true });
    log({ pid: process.pid, kind, lastId: nextId - 1, written: nextId - firstId, signal }, "writer stopped");
    process.exit(0);
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
}

main();
