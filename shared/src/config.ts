// One way to load a daemon's configuration: defaults < file < environment < flags,
// validated with a zod schema, frozen. Errors name the offending key.
import { readFileSync } from "node:fs";
import stripJsonComments from "strip-json-comments";
import { z } from "zod";
import { LullError } from "./errors.js";

export { z };

/** Formats zod issues as `key.path: message; ...` so an operator sees which key is wrong. */
export function describeIssues(error: z.ZodError, source: string): string {
  return error.issues
    .map((issue) => {
      const key = issue.path.length > 0 ? issue.path.map(String).join(".") : "(root)";
      return `${source}: ${key}: ${issue.message}`;
    })
    .join("; ");
}

/** Reads a JSON config file (line and block comments allowed, as in the packaged example); a missing or unreadable file, or bad JSON, is a LULL_E_CONFIG_INVALID. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new LullError("LULL_E_CONFIG_INVALID", `cannot read config file ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(stripJsonComments(text));
  } catch (err) {
    throw new LullError("LULL_E_CONFIG_INVALID", `config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new LullError("LULL_E_CONFIG_INVALID", `config file ${path} must hold a JSON object`);
  }
  return value as Record<string, unknown>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Deep merge of plain objects; later layers win; arrays are replaced, not merged. */
export function mergeLayers(...layers: Array<Record<string, unknown> | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      const prev = out[key];
      out[key] = isPlainObject(prev) && isPlainObject(value) ? mergeLayers(prev, value) : value;
    }
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export interface ConfigLayers {
  /** Path of the JSON config file, if any. */
  file?: string | undefined;
  /** Values taken from the environment, already mapped to config keys by the caller. */
  env?: Record<string, unknown>;
  /** Values from command-line flags, already mapped to config keys. */
  flags?: Record<string, unknown>;
}

/** Loads, validates and freezes a configuration. */
export function loadConfig<S extends z.ZodType>(schema: S, layers: ConfigLayers): Readonly<z.output<S>> {
  const fromFile = layers.file ? readConfigFile(layers.file) : undefined;
  const merged = mergeLayers(fromFile, layers.env, layers.flags);
  const result = schema.safeParse(merged);
  if (!result.success) {
    throw new LullError("LULL_E_CONFIG_INVALID", describeIssues(result.error, layers.file ?? "config"));
  }
  return deepFreeze(result.data);
}
