import assert from "node:assert/strict";
import { test } from "node:test";
import { LEAD_MARGIN_MS, defaultLeadMs, resumeLeadMs } from "./resume-lead.js";

test("default lead: a quarter of the window, at most 10 s", () => {
  assert.equal(defaultLeadMs(300_000), 10_000);
  assert.equal(defaultLeadMs(20_000), 5_000);
  assert.equal(resumeLeadMs({ resumeDeadlineMs: 300_000 }, undefined), 10_000);
  assert.equal(resumeLeadMs({ resumeDeadlineMs: 1_500 }, undefined), 375);
});

test("a slow resume measured earlier raises the lead to twice its duration plus a margin", () => {
  assert.equal(resumeLeadMs({ resumeDeadlineMs: 300_000 }, 2_000), 10_000, "fast enough: the floor stays");
  assert.equal(resumeLeadMs({ resumeDeadlineMs: 300_000 }, 8_000), 16_000 + LEAD_MARGIN_MS);
  assert.equal(resumeLeadMs({ resumeDeadlineMs: 4_000, resumeLeadMs: 500 }, 600), 1_200 + LEAD_MARGIN_MS);
});

test("the configured lead is a floor; the lead never exceeds half the window", () => {
  assert.equal(resumeLeadMs({ resumeDeadlineMs: 60_000, resumeLeadMs: 20_000 }, 100), 20_000);
  assert.equal(resumeLeadMs({ resumeDeadlineMs: 60_000 }, 100_000), 30_000);
  assert.equal(resumeLeadMs({ resumeDeadlineMs: 60_000, resumeLeadMs: 0 }, undefined), 0);
});
