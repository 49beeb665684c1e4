import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { ERROR_CODES, ERROR_CODE_KEY, LullError, asLullError, fromServiceError, toServiceError } from "./errors.js";

const errorsDoc = readFileSync(fileURLToPath(new URL("../ERRORS.md", import.meta.url)), "utf8");

test("every error code is documented in shared/ERRORS.md with its gRPC status and whether it is terminal", () => {
  for (const [code, declared] of Object.entries(ERROR_CODES)) {
    const row = errorsDoc.split("\n").find((line) => line.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} has no row in shared/ERRORS.md`);
    const [, grpcStatus, terminal] = row.split("|").map((cell) => cell.trim()).slice(1);
    assert.equal(grpcStatus, status[declared.status], `${code} row names the wrong gRPC status`);
    assert.equal(terminal, declared.terminal ? "yes" : "no", `${code} row's terminal column disagrees with ERROR_CODES`);
  }
});

test("terminal is opt-in: unknown errors and a broken transport may be retried, a bad request may not", () => {
  assert.equal(new LullError("LULL_E_INTERNAL", "bug").terminal, false);
  assert.equal(asLullError(new Error("boom")).terminal, false);
  assert.equal(fromServiceError({ code: status.DATA_LOSS, details: "x", metadata: new Metadata() }).terminal, false);
  assert.equal(new LullError("LULL_E_INVALID_ARGUMENT", "x").terminal, true);
  assert.equal(new LullError("LULL_E_JOB_NOT_FOUND", "x").terminal, true);
  assert.equal(new LullError("LULL_E_SHUTTING_DOWN", "x").terminal, false);
  assert.equal(new LullError("LULL_E_INTERNAL", "x", { terminal: true }).terminal, true, "a thrower may still say so");
  const decoded = fromServiceError(toServiceError(new LullError("LULL_E_WRONG_PHASE", "late")) as ServiceError);
  assert.equal(decoded.terminal, true, "terminal survives the trip as the code's declaration");
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
