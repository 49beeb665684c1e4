import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { FileResumeTimings, MemoryResumeTimings, RECENT_RESUMES } from "./resume-timing.js";

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "lull-timing-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("the longest of the recent resumes counts; an old slow one ages out", () => {
  const t = new MemoryResumeTimings();
  assert.equal(t.longestMs(), undefined);
  t.record(900);
  t.record(120);
  assert.equal(t.longestMs(), 900);
  for (let i = 0; i < RECENT_RESUMES - 1; i++) t.record(100);
  assert.equal(t.longestMs(), 120, "the 900 ms resume is no longer among the last five");
});

test("kept next to the marker: a new controller for the same stack starts from what the last one measured", (t) => {
  const dir = tempDir(t);
  const first = new FileResumeTimings(dir, "app");
  first.record(1_234.4);
  first.record(300);
  assert.deepEqual(JSON.parse(readFileSync(first.path, "utf8")), { version: 1, recentResumesMs: [1234, 300] });
  assert.equal(new FileResumeTimings(dir, "app").longestMs(), 1234);
  assert.equal(new FileResumeTimings(dir, "db").longestMs(), undefined, "per stack");
});

test("an unreadable file is ignored; a failed write is reported and keeps the figure in memory", (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "app.resume-timing.json"), "{ torn");
  assert.equal(new FileResumeTimings(dir, "app").longestMs(), undefined);
  writeFileSync(join(dir, "app.resume-timing.json"), JSON.stringify({ version: 1, recentResumesMs: [50, "x", -3, 70] }));
  assert.equal(new FileResumeTimings(dir, "app").longestMs(), 70);
  const errors: string[] = [];
  const blocked = new FileResumeTimings(join(dir, "app.resume-timing.json", "not-a-dir"), "app", (err) => errors.push(err.message));
  blocked.record(400);
  assert.equal(errors.length, 1);
  assert.equal(blocked.longestMs(), 400);
});
