// The import graph's rules (ARCHITECTURE.md), checked over the source tree: dependencies run one
// way, the daemons never reach into the tests, lullctl and the controller are clients of the agent's
// API and never of its internals, and production code never imports a test helper.
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { REPO_ROOT } from "../support/paths.js";

interface Import {
  /** The importing file, relative to the repository root. */
  from: string;
  /** The specifier as written. */
  spec: string;
  /** A relative specifier resolved to a path relative to the root; undefined for a package. */
  target: string | undefined;
}

const PACKAGES = ["proto", "shared", "agent", "controller", "lullctl", "test"] as const;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "gen" && entry.name !== "node_modules") out.push(...sourceFiles(path));
    } else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

const SPECIFIER = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)/g;

function importsOf(pkg: string): Import[] {
  const root = join(REPO_ROOT, pkg, "src");
  const out: Import[] = [];
  for (const file of sourceFiles(root)) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(SPECIFIER)) {
      const spec = (m[1] ?? m[2]) as string;
      const target = spec.startsWith(".") ? relative(REPO_ROOT, resolve(dirname(file), spec)) : undefined;
      out.push({ from: relative(REPO_ROOT, file), spec, target });
    }
  }
  return out;
}

const ALL = new Map(PACKAGES.map((p) => [p, importsOf(p)]));
const isTest = (path: string) => /\.test\.ts$/.test(path) || /\/testing\//.test(path);
const show = (bad: Import[]) => bad.map((i) => `${i.from} → ${i.spec}`).join("\n");

describe("the import graph", () => {
  it("finds imports to check (the scan itself works)", () => {
    for (const pkg of ["agent", "controller", "lullctl", "shared"] as const) {
      assert.ok((ALL.get(pkg)?.length ?? 0) > 20, `${pkg} has imports`);
    }
  });

  it("jobs/ never imports groups/: a group joins a job through the membership port in jobs/", () => {
    const bad = ALL.get("agent")!.filter((i) => i.from.startsWith("agent/src/jobs/") && i.target?.startsWith("agent/src/groups/"));
    assert.equal(show(bad), "");
  });

  it("storage/ never imports pve/: storage drivers take their limits from their dependencies", () => {
    const bad = ALL.get("agent")!.filter((i) => i.from.startsWith("agent/src/storage/") && i.target?.startsWith("agent/src/pve/"));
    assert.equal(show(bad), "");
  });

  it("groups/ never imports the gRPC layer: requests are validated by the API layer (api/) that gRPC uses", () => {
    const bad = ALL.get("agent")!.filter((i) => i.from.startsWith("agent/src/groups/") && i.target?.startsWith("agent/src/grpc/"));
    assert.equal(show(bad), "");
  });

  it("no daemon package imports the test workspace, nor reaches into it by a relative path (its fakes come in by an env var)", () => {
    const bad = (["proto", "shared", "agent", "controller", "lullctl"] as const).flatMap((p) =>
      ALL.get(p)!.filter((i) => i.spec === "@lull/test" || i.spec.startsWith("@lull/test/") || i.target?.startsWith("test/")),
    );
    assert.equal(show(bad), "");
    const paths = (["proto", "shared", "agent", "controller", "lullctl"] as const).flatMap((p) =>
      sourceFiles(join(REPO_ROOT, p, "src")).filter((file) => /["'`](\.\.\/)+test\//.test(readFileSync(file, "utf8"))).map((file) => relative(REPO_ROOT, file)),
    );
    assert.deepEqual(paths, []);
  });

  it("lullctl and the controller use the agent only through its API; only their tests start a real one (@lull/agent, a dev dependency)", () => {
    const bad = (["lullctl", "controller"] as const).flatMap((p) =>
      ALL.get(p)!.filter((i) => {
        if (i.target?.startsWith("agent/")) return true;
        const intoAgent = i.spec === "@lull/agent" || i.spec.startsWith("@lull/agent/");
        return intoAgent && !isTest(i.from);
      }),
    );
    assert.equal(show(bad), "");
  });

  it("shared and proto import no other workspace package but proto", () => {
    const bad = (["proto", "shared"] as const).flatMap((p) =>
      ALL.get(p)!.filter((i) => i.spec.startsWith("@lull/") && i.spec !== "@lull/proto" || (i.target !== undefined && !i.target.startsWith(`${p}/`))),
    );
    assert.equal(show(bad), "");
  });

  it("production code never imports a test helper (testing/ or a *.test file)", () => {
    const bad = [...ALL.values()].flat().filter((i) => {
      if (i.from.startsWith("test/") || isTest(i.from)) return false;
      return /(^|\/)testing(\/|$)|\.test\.js$/.test(i.target ?? i.spec);
    });
    assert.equal(show(bad), "");
  });
});

describe("what the daemons' packages ship", () => {
  for (const pkg of ["agent", "controller", "lullctl"] as const) {
    it(`${pkg}: its package holds its built code and no test or test helper`, () => {
      const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts", "-w", pkg], { cwd: REPO_ROOT, encoding: "utf8" });
      const files = (JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
      const bins = Object.values((JSON.parse(readFileSync(join(REPO_ROOT, pkg, "package.json"), "utf8")) as { bin?: Record<string, string> }).bin ?? {});
      assert.ok(bins.length > 0, `${pkg} has a binary`);
      for (const bin of bins) assert.ok(files.includes(bin.replace(/^\.\//, "")), `${pkg} ships ${bin}`);
      const testFiles = files.filter((f) => /(^|\/)testing\/|\.test\.(js|d\.ts|js\.map|d\.ts\.map)$/.test(f));
      assert.deepEqual(testFiles, []);
    });
  }
});
