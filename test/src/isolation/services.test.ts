// The services' writers and readers on a plain temp dir: what a writer made durable reads back,
// and the reader names damage (a corrupt SQLite file, a torn log line, a leftover temp object).
import assert from "node:assert/strict";
import { openSync, closeSync, writeFileSync, appendFileSync, writeSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { makeTempDir, removeDir } from "../support/temp.js";
import { SERVICE_KINDS, type ServiceKind } from "./ledger.js";
import { openServiceWriter, readServiceContents } from "./services.js";

let scratch: string;
before(async () => {
  scratch = await makeTempDir("lull-isolation-services-");
});
after(() => removeDir(scratch));

async function writeRecords(kind: ServiceKind, name: string, count: number): Promise<string> {
  const dir = join(scratch, name);
  await mkdir(dir);
  const writer = openServiceWriter(kind, dir);
  for (let id = 1; id <= count; id++) writer.write({ id, at: 1_000 + id });
  writer.close();
  return dir;
}

test("every kind reads back exactly what was written, and a reopened writer continues after the last id", async () => {
  for (const kind of SERVICE_KINDS) {
    const dir = await writeRecords(kind, `clean-${kind}`, 25);
    const contents = readServiceContents(kind, dir);
    assert.deepEqual(contents.problems, [], kind);
    assert.deepEqual(contents.records, Array.from({ length: 25 }, (_, i) => ({ id: i + 1, at: 1_001 + i })), kind);
    const again = openServiceWriter(kind, dir);
    assert.equal(again.maxId(), 25, kind);
    again.close();
  }
});

test("a damaged SQLite file fails the integrity check or does not open", async () => {
  const dir = await writeRecords("sqlite", "corrupt-sqlite", 2_000);
  const db = join(dir, "records.db");
  const size = statSync(db).size;
  assert.ok(size > 8 * 4096, `the database has pages to damage (${size} bytes)`);
  const fd = openSync(db, "r+");
  for (let page = 2; page * 4096 < size; page += 3) writeSync(fd, Buffer.alloc(512, 0xa5), 0, 512, page * 4096 + 64);
  closeSync(fd);
  const contents = readServiceContents("sqlite", dir);
  assert.ok(
    contents.problems.some((p) => /^PRAGMA integrity_check: |cannot be read: /.test(p)),
    `problems: ${contents.problems.join("; ")}`,
  );
});

test("a torn log line, a damaged object and a leftover temp object are named", async () => {
  const log = await writeRecords("log", "torn-log", 3);
  appendFileSync(join(log, "records.log"), '{"id":4,"at":10');
  assert.deepEqual(readServiceContents("log", log).problems, ["torn last line 4"]);
  assert.equal(readServiceContents("log", log).records.length, 3);

  const objects = await writeRecords("objects", "partial-objects", 3);
  writeFileSync(join(objects, "objects", ".0000000004.json.tmp"), '{"id":4');
  writeFileSync(join(objects, "objects", "0000000002.json"), '{"id":2,"at":1002,"payload":"not the payload"}\n');
  assert.deepEqual(readServiceContents("objects", objects).problems, [
    "partial object .0000000004.json.tmp (a write in progress)",
    "damaged object 0000000002.json",
  ]);
  assert.deepEqual(
    readServiceContents("objects", objects).records.map((r) => r.id),
    [1, 3],
  );
});
