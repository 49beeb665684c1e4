// The argv of `tar --create` for one job's archive. Every volume appears in the archive
// under its name: `tar --zstd -xf <file> -C <dir>` yields <dir>/<volume name>/...
//
// tar is run with `-C /` and each volume's resolved path (without the leading slash) as a
// member; `--transform` renames the members. GNU tar applies all transforms to every member,
// one after another, so a member renamed to `data/...` could be renamed again by a later
// rule whose source path starts with `data/`. Two stages avoid that: first each path
// becomes `.lull-volume-<i>` (no volume path may start with that), then each marker
// becomes the volume's name (names never start with a dot). The `S` flag leaves symlink
// targets alone; hard link targets are renamed like their members.
import { isAbsolute, relative } from "node:path";
import { LullError } from "@lull/shared";

export interface TarVolume {
  /** Name inside the archive ([a-z0-9][a-z0-9_-]*, from the config). */
  name: string;
  /** Absolute path with every symlink resolved (realpath). */
  realPath: string;
}

const MARKER = ".lull-volume-";
const VOLUME_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
/** A transform delimiter that occurs in none of the paths is picked from these. */
const DELIMITERS = [",", "|", "#", "@", "!", "%", ":", ";", "~", "="];

/** Options of every archive: POSIX (pax) format for long names, sub-second times, ACLs and xattrs. */
export const TAR_COMMON_OPTIONS = [
  "--create",
  "--file=-",
  "--format=posix",
  "--numeric-owner",
  "--sparse",
  "--acls",
  "--xattrs",
  "--xattrs-include=user.*",
  "--xattrs-include=security.capability",
];

/**
 * Reading live paths (dir driver, `snapshot: none`): a file that changes, shrinks or vanishes
 * while tar reads it is archived as found (or skipped) instead of failing the job.
 * GNU tar still exits 1 ("some files differ") in that case; the caller accepts exit 1 then.
 */
export const TAR_LIVE_OPTIONS = [
  "--ignore-failed-read",
  "--warning=no-file-changed",
  "--warning=no-file-removed",
  "--warning=no-file-shrank",
  "--warning=no-file-ignored",
];

/** `s,^srv/app\(/\|$\),data\1,S` with the path's regex characters escaped (GNU basic regex). */
function escapeBasicRegex(text: string): string {
  return text.replace(/[\\.*[\]^$]/g, (c) => `\\${c}`);
}

function pickDelimiter(texts: readonly string[]): string {
  const delimiter = DELIMITERS.find((d) => texts.every((t) => !t.includes(d)));
  if (delimiter === undefined) {
    throw new LullError("LULL_E_CONFIG_INVALID", `volume paths contain every one of ${DELIMITERS.join(" ")}`);
  }
  return delimiter;
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

function checkVolumes(volumes: readonly TarVolume[]): void {
  if (volumes.length === 0) throw new LullError("LULL_E_CONFIG_INVALID", "an archive needs at least one volume");
  volumes.forEach((v, i) => {
    if (!VOLUME_NAME.test(v.name)) throw new LullError("LULL_E_CONFIG_INVALID", `volume name ${JSON.stringify(v.name)} is not valid`);
    if (!isAbsolute(v.realPath) || v.realPath === "/") {
      throw new LullError("LULL_E_CONFIG_INVALID", `volume ${v.name}: ${v.realPath} cannot be archived (absolute, not /)`);
    }
    if (/[\n\r\0]/.test(v.realPath)) {
      throw new LullError("LULL_E_CONFIG_INVALID", `volume ${v.name}: path contains a line break or NUL`);
    }
    if (v.realPath.slice(1).startsWith(MARKER)) {
      throw new LullError("LULL_E_CONFIG_INVALID", `volume ${v.name}: paths under /${MARKER}* cannot be archived`);
    }
    volumes.forEach((other, j) => {
      if (j !== i && isInside(v.realPath, other.realPath)) {
        throw new LullError(
          "LULL_E_CONFIG_INVALID",
          `volume ${v.name} (${v.realPath}) lies inside volume ${other.name} (${other.realPath}); volumes must not overlap`,
        );
      }
      if (j < i && other.name === v.name) throw new LullError("LULL_E_CONFIG_INVALID", `duplicate volume name ${v.name}`);
    });
  });
}

/** argv (without the program) of tar writing the archive of `volumes` to stdout. */
export function tarCreateArgs(volumes: readonly TarVolume[], options: { live: boolean }): string[] {
  checkVolumes(volumes);
  const members = volumes.map((v) => v.realPath.slice(1));
  const d = pickDelimiter(members);
  const toMarker = members.map((m, i) => `--transform=s${d}^${escapeBasicRegex(m)}\\(/\\|$\\)${d}${MARKER}${i}\\1${d}S`);
  const toName = volumes.map(
    (v, i) => `--transform=s${d}^${escapeBasicRegex(`${MARKER}${i}`)}\\(/\\|$\\)${d}${v.name}\\1${d}S`,
  );
  return [
    ...TAR_COMMON_OPTIONS,
    ...(options.live ? TAR_LIVE_OPTIONS : []),
    ...toMarker,
    ...toName,
    "--directory=/",
    "--",
    ...members,
  ];
}
