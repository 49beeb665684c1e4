import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createFileMarkerStore, type Marker } from "./marker-store.js";

const marker: Marker = {
  jobId: "j-0000000000000000000000000a",
  guestId: "demo",
  stack: "app",
  agent: "127.0.0.1:7450",
  controllerId: "host-1",
  stoppedAt: Date.parse("2026-11-22T10:00:00.000Z"),
  resumeDeadline: Date.parse("2026-11-22T10:05:00.000Z"),
  resumeAt: Date.parse("2026-11-22T10:04:50.000Z"),
};

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "lull-markers-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("write, read back, clear", (t) => {
  const dir = tempDir(t);
  const store = createFileMarkerStore(join(dir, "markers"), "app");
  assert.deepEqual(store.read(), { kind: "none" });
  store.write(marker);
  assert.deepEqual(store.read(), { kind: "present", marker });
  const onDisk = JSON.parse(readFileSync(store.path, "utf8"));
  assert.equal(onDisk.stoppedAt, "2026-11-22T10:00:00.000Z", "times are ISO strings for a human reading the file");
  assert.equal(onDisk.controllerId, "host-1");
  store.clear();
  assert.deepEqual(store.read(), { kind: "none" });
  store.clear(); // idempotent
});

test("crash-safe: written through a temp file and a rename; a leftover temp file is never read and is swept", (t) => {
  const dir = tempDir(t);
  const store = createFileMarkerStore(dir, "app");
  store.write(marker);
  assert.deepEqual(readdirSync(dir), ["app.marker.json"], "no temp file left after a write");

  // A crash in the middle of a later write leaves a half-written temp file next to the old marker.
  const temp = join(dir, ".app.marker.json.tmp-99999");
  writeFileSync(temp, '{"version":1,"jobId":"j-half');
  assert.deepEqual(store.read(), { kind: "present", marker }, "the complete old marker is what a reader sees");
  const next = { ...marker, jobId: "j-0000000000000000000000000b" };
  store.write(next);
  assert.equal(existsSync(temp), false, "swept by the next write");
  assert.deepEqual(store.read(), { kind: "present", marker: next });
});

test("a corrupt or unreadable marker is reported as corrupt, not as absent", (t) => {
  const dir = tempDir(t);
  const store = createFileMarkerStore(dir, "app");
  writeFileSync(store.path, "{ truncated");
  const read1 = store.read();
  assert.equal(read1.kind, "corrupt");
  writeFileSync(store.path, JSON.stringify({ version: 1, jobId: "j-x" }));
  const read2 = store.read();
  assert.equal(read2.kind, "corrupt");
  if (read2.kind === "corrupt") assert.match(read2.reason, /guestId|stack|agent|stoppedAt/);
  writeFileSync(store.path, "");
  assert.equal(store.read().kind, "corrupt");
});

test("one marker per stack in a shared directory", (t) => {
  const dir = tempDir(t);
  const app = createFileMarkerStore(dir, "app");
  const db = createFileMarkerStore(dir, "db");
  app.write(marker);
  assert.equal(db.read().kind, "none");
  db.write({ ...marker, stack: "db" });
  app.clear();
  assert.equal(db.read().kind, "present");
});

test("a marker written without resumeAt (an older controller) resumes at its deadline; a resumeAt past the deadline is clamped", (t) => {
  const dir = tempDir(t);
  const store = createFileMarkerStore(dir, "app");
  store.write(marker);
  const onDisk = JSON.parse(readFileSync(store.path, "utf8"));
  assert.equal(onDisk.resumeAt, "2026-11-22T10:04:50.000Z");
  delete onDisk.resumeAt;
  writeFileSync(store.path, JSON.stringify(onDisk));
  assert.deepEqual(store.read(), { kind: "present", marker: { ...marker, resumeAt: marker.resumeDeadline } });
  writeFileSync(store.path, JSON.stringify({ ...onDisk, resumeAt: "2026-11-22T10:09:00.000Z" }));
  assert.deepEqual(store.read(), { kind: "present", marker: { ...marker, resumeAt: marker.resumeDeadline } });
});
