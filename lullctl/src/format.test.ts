import assert from "node:assert/strict";
import { test } from "node:test";
import { formatBytes, formatDuration, formatOffset, renderTable } from "./format.js";
import { captureOutput } from "./output.js";
import { progressReporter } from "./progress.js";

test("durations and sizes read like a person would write them", () => {
  assert.equal(formatDuration(42), "42 ms");
  assert.equal(formatDuration(1234), "1.23 s");
  assert.equal(formatDuration(125_000), "2m05s");
  assert.equal(formatDuration(3_725_000), "1h02m05s");
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(1024 ** 3), "1.00 GiB");
  assert.equal(formatBytes(150 * 1024 ** 2), "150 MiB");
  assert.equal(formatOffset(1234).trim(), "+1.234s");
});

test("tables pad columns and keep the last one ragged", () => {
  assert.deepEqual(renderTable(["A", "BB"], [["xxx", "y"], ["z", "longer"]]), ["A    BB", "xxx  y", "z    longer"]);
});

test("progress is a redrawn bar on a terminal and periodic plain lines elsewhere", () => {
  let now = 0;
  const tty = captureOutput({ isTTY: true, columns: 100 });
  const bar = progressReporter({ out: tty, now: () => now });
  bar.update(512, 1024);
  bar.clear();
  tty.line("  +1.000s  stack app resumed");
  bar.redraw();
  assert.match(tty.stdout, /\r\x1b\[K {2}\+1\.000s {2}stack app resumed\n\r\x1b\[K\[#+\.+\]\s+512 B/, "the bar comes back below the line");
  now += 500;
  bar.update(1024, 1024);
  bar.clear();
  assert.match(tty.stdout, /\r\x1b\[K\[#+\.+\]\s+512 B \/ 1.00 KiB\s+50%/);
  assert.match(tty.stdout, /\[#+\]\s+1.00 KiB \/ 1.00 KiB\s+100%/);
  assert.equal(tty.lines.length, 1, "the bar itself never prints newlines");

  now = 0;
  const pipe = captureOutput({ isTTY: false });
  const lines = progressReporter({ out: pipe, now: () => now, lineEveryMs: 2000 });
  for (let i = 1; i <= 10; i++) {
    now += 500;
    lines.update(i * 100, 1000);
  }
  assert.ok(!pipe.stdout.includes("\r"), "no carriage returns in a pipe");
  assert.deepEqual(
    pipe.lines.map((l) => /archived (\S+ \S+) of/.exec(l)?.[1]),
    ["100 B", "500 B", "900 B", "1000 B"],
    "one line every 2 s, and the last at 100%",
  );
});
