import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { ERROR_CODES, ERROR_CODE_KEY, LullError, fromServiceError, toServiceError } from "./errors.js";

const errorsDoc = readFileSync(fileURLToPath(new URL("../ERRORS.md", import.meta.url)), "utf8");

test("every error code is documented in shared/ERRORS.md with its gRPC status", () => {
  for (const [code, grpcStatus] of Object.entries(ERROR_CODES)) {
    const row = errorsDoc.split("\n").find((line) => line.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} has no row in shared/ERRORS.md`);
    assert.match(row, new RegExp(`\\| ${status[grpcStatus]} \\|`), `${code} row names the wrong gRPC status`);
  }
});

test("every documented code exists", () => {
  const documented = [...errorsDoc.matchAll(/^\| `(LULL_E_[A-Z_]+)` \|/gm)].map((m) => m[1]);
  for (const code of documented) assert.ok(code && code in ERROR_CODES, `${code} is documented but not defined`);
});

test("a LullError survives the trip through a gRPC status", () => {
  const sent = toServiceError(new LullError("LULL_E_GUEST_BUSY", "guest demo already has job j-1"));
  assert.equal(sent.code, status.FAILED_PRECONDITION);
  const received = fromServiceError({ ...sent, message: "x" } as ServiceError);
  assert.equal(received.code, "LULL_E_GUEST_BUSY");
  assert.equal(received.message, "guest demo already has job j-1");
});

test("an unknown error becomes LULL_E_INTERNAL; a bare UNAVAILABLE becomes LULL_E_AGENT_UNREACHABLE", () => {
  assert.equal(toServiceError(new Error("boom")).code, status.INTERNAL);
  const unreachable = fromServiceError({ code: status.UNAVAILABLE, details: "No connection established", metadata: new Metadata() });
  assert.equal(unreachable.code, "LULL_E_AGENT_UNREACHABLE");
  assert.equal(unreachable.terminal, false);
  const md = new Metadata();
  md.set(ERROR_CODE_KEY, "NOT_A_CODE");
  assert.equal(fromServiceError({ code: status.NOT_FOUND, details: "x", metadata: md }).code, "LULL_E_INTERNAL");
});
