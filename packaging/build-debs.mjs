#!/usr/bin/env node
// npm run package: builds lull-agent_<v>_<arch>.deb and lull-controller_<v>_all.deb with dpkg-deb
// from the compiled workspaces (run `npm run build` first; the npm script does). Each package
// carries its workspaces' dist (no tests, no testing helpers) and the closure of their runtime
// dependencies from node_modules, laid out as in the repository so Node resolves them the same
// way, under /usr/lib/lull (agent, lullctl) or /usr/lib/lull-controller.
//
// Runtime: Debian's `nodejs` package, 20.x. better-sqlite3 is a native addon built for the ABI
// of the Node that ran `npm ci` (Node 20 here), so the agent pins nodejs (>= 20, << 21); the
// controller has no native code and takes any nodejs >= 20. Output: packaging/out/ (or --out DIR).
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, "..");
const outArg = process.argv.indexOf("--out");
const OUT = outArg > 0 ? resolve(process.argv[outArg + 1]) : join(HERE, "out");
const readJson = (p) => JSON.parse(readFileSync(p, "utf8"));
const version = readJson(join(REPO, "agent", "package.json")).version;
const WORKSPACES = new Map(["proto", "shared", "agent", "lullctl", "controller"].map((w) => [readJson(join(REPO, w, "package.json")).name, w]));

function fail(message) {
  console.error(`package: ${message}`);
  process.exit(1);
}

/** Resolves `dep` from the package at `fromDir` as Node does (node_modules of each parent up to the repo). */
function resolveDep(fromDir, dep) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", dep);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dir === REPO || dir === dirname(dir)) return undefined;
  }
}

/** Every runtime dependency of the given workspaces: repository-relative paths of package dirs. */
function closure(workspaces) {
  const seen = new Map(); // rel path -> real dir
  const queue = workspaces.map((w) => join(REPO, w));
  while (queue.length) {
    const dir = queue.shift();
    const pkg = readJson(join(dir, "package.json"));
    const deps = { ...pkg.dependencies, ...pkg.optionalDependencies };
    for (const dep of Object.keys(deps)) {
      const found = resolveDep(dir, dep);
      if (!found) {
        if (pkg.optionalDependencies?.[dep]) continue;
        fail(`${pkg.name} needs ${dep}, which is not installed: run npm ci`);
      }
      const real = realpathSync(found);
      if (WORKSPACES.has(dep)) {
        if (!workspaces.includes(WORKSPACES.get(dep))) fail(`${pkg.name} needs workspace ${dep}, which this package does not carry`);
        continue;
      }
      const rel = relative(REPO, found);
      if (seen.has(rel)) continue;
      seen.set(rel, real);
      queue.push(real);
    }
  }
  return seen;
}

/** Skips tests, test helpers, sources and maps of our own dist. */
const keepOwn = (src) => !/(\.test\.(js|d\.ts)(\.map)?$|\/testing(\/|$)|\.map$|\.tsbuildinfo$)/.test(src);

function copyWorkspace(w, root) {
  const dest = join(root, w);
  const dist = join(REPO, w, "dist");
  if (!existsSync(dist)) fail(`${w}/dist is missing: run npm run build first`);
  mkdirSync(dest, { recursive: true });
  cpSync(join(REPO, w, "package.json"), join(dest, "package.json"));
  cpSync(dist, join(dest, "dist"), { recursive: true, filter: keepOwn });
  // The .proto sources: gRPC reflection serves them from the package's directory at run time.
  if (w === "proto") cpSync(join(REPO, w, "lull"), join(dest, "lull"), { recursive: true });
  const name = readJson(join(REPO, w, "package.json")).name;
  const link = join(root, "node_modules", name);
  mkdirSync(dirname(link), { recursive: true });
  symlinkSync(relative(dirname(link), dest), link);
}

/** What a package does not need at run time: better-sqlite3's SQLite sources and its build's objects. */
function dropped(name, rel) {
  if (name === "better-sqlite3" && /^\/(deps|src)(\/|$)/.test(rel)) return true;
  return /^\/build\/(Debug|Release\/(obj|obj\.target|\.deps|test_extension\.node))(\/|$)/.test(rel);
}

function copyDeps(deps, root) {
  for (const [rel, real] of deps) {
    const name = readJson(join(real, "package.json")).name;
    cpSync(real, join(root, rel), { recursive: true, dereference: true, filter: (src) => !dropped(name, src.slice(real.length)) });
  }
}

function wrapper(path, main) {
  writeFileSync(path, `#!/bin/sh\nexec /usr/bin/node ${main} "$@"\n`);
  chmodSync(path, 0o755);
}

function installedSizeKiB(dir) {
  let total = 0;
  const walk = (d) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else total += st.size;
    }
  };
  walk(dir);
  return Math.ceil(total / 1024);
}

function build(spec) {
  const stage = join(OUT, `${spec.name}-stage`);
  rmSync(stage, { recursive: true, force: true });
  const root = join(stage, spec.libDir);
  for (const w of spec.workspaces) copyWorkspace(w, root);
  copyDeps(closure(spec.workspaces), root);
  mkdirSync(join(stage, "usr", "bin"), { recursive: true });
  for (const [bin, main] of Object.entries(spec.bins)) wrapper(join(stage, "usr", "bin", bin), `/${spec.libDir}/${main}`);
  for (const [from, to, mode] of spec.files) {
    mkdirSync(dirname(join(stage, to)), { recursive: true });
    cpSync(join(HERE, from), join(stage, to));
    chmodSync(join(stage, to), mode);
  }
  for (const [dir, mode] of spec.dirs ?? []) mkdirSync(join(stage, dir), { recursive: true, mode });
  const debian = join(stage, "DEBIAN");
  mkdirSync(debian, { recursive: true });
  for (const script of ["postinst", "prerm", "postrm"]) {
    cpSync(join(HERE, spec.name, script), join(debian, script));
    chmodSync(join(debian, script), 0o755);
  }
  if (spec.conffiles.length) writeFileSync(join(debian, "conffiles"), spec.conffiles.map((c) => `${c}\n`).join(""));
  writeFileSync(
    join(debian, "control"),
    [
      `Package: ${spec.name}`,
      `Version: ${version}`,
      `Architecture: ${spec.arch}`,
      `Maintainer: Lull maintainers <lull@localhost>`,
      `Installed-Size: ${installedSizeKiB(stage)}`,
      `Depends: ${spec.depends}`,
      `Section: admin`,
      `Priority: optional`,
      `Description: ${spec.summary}`,
      ...spec.description.map((l) => ` ${l}`),
      "",
    ].join("\n"),
  );
  mkdirSync(OUT, { recursive: true });
  const deb = join(OUT, `${spec.name}_${version}_${spec.arch}.deb`);
  execFileSync("dpkg-deb", ["--root-owner-group", "-Zzstd", "-z9", "--build", stage, deb], { stdio: ["ignore", "ignore", "inherit"] });
  rmSync(stage, { recursive: true, force: true });
  console.log(`${deb} (${Math.round(statSync(deb).size / 1024)} KiB)`);
}

const arch = execFileSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).trim();

build({
  name: "lull-agent",
  arch,
  libDir: "usr/lib/lull",
  workspaces: ["proto", "shared", "agent", "lullctl"],
  bins: { "lull-agent": "agent/dist/main.js", lullctl: "lullctl/dist/main.js" },
  files: [
    ["lull-agent/lull-agent.service", "lib/systemd/system/lull-agent.service", 0o644],
    ["lull-agent/agent.json", "etc/lull/agent.json", 0o644],
    ["../README.md", "usr/share/doc/lull-agent/README.md", 0o644],
    ["../agent/PROXMOX.md", "usr/share/doc/lull-agent/PROXMOX.md", 0o644],
    ["../agent/SECURITY.md", "usr/share/doc/lull-agent/SECURITY.md", 0o644],
    ["../ops/grafana-dashboard.json", "usr/share/doc/lull-agent/grafana-dashboard.json", 0o644],
    ["../ops/alert-rules.yaml", "usr/share/doc/lull-agent/alert-rules.yaml", 0o644],
  ],
  dirs: [["var/lib/lull", 0o700]],
  conffiles: ["/etc/lull/agent.json"],
  depends: "nodejs (>= 20~), nodejs (<< 21~), tar, zstd, openssl, util-linux",
  summary: "Lull backup agent for Proxmox VE nodes (app-consistent, early resume)",
  description: [
    "lull-agent backs up the application stacks in Proxmox VE guests with the",
    "application down only until the storage snapshot exists. This package has the",
    "agent daemon and its systemd unit, the vzdump hook, and lullctl.",
  ],
});

build({
  name: "lull-controller",
  arch: "all",
  libDir: "usr/lib/lull-controller",
  workspaces: ["proto", "shared", "controller"],
  bins: { "lull-controller": "controller/dist/main.js" },
  files: [
    ["lull-controller/lull-controller@.service", "lib/systemd/system/lull-controller@.service", 0o644],
    ["lull-controller/example.json", "usr/share/doc/lull-controller/example.json", 0o644],
    ["../controller/README.md", "usr/share/doc/lull-controller/README.md", 0o644],
  ],
  dirs: [["var/lib/lull-controller", 0o700], ["etc/lull/controller", 0o755]],
  conffiles: [],
  depends: "nodejs (>= 20~)",
  summary: "Lull controller: quiesces one application stack inside a guest",
  description: [
    "lull-controller runs beside an application stack in a Proxmox VE guest, stops it",
    "when a backup of the guest begins and starts it again the moment the node's",
    "lull-agent reports the snapshot. One instance per stack: lull-controller@<stack>.",
  ],
});
