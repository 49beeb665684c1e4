// The port to the Proxmox cluster file system (pmxcfs, mounted at /etc/pve): the few calls the
// lease and the cluster-wide tick records need. Paths are relative to the mount. Errors are
// Node's errno errors (EEXIST, ENOENT, EACCES, EPERM) as the kernel returns them from pmxcfs.
import { lstat, mkdir, rename, rmdir, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface ClusterFs {
  /** This node's name (its pmxcfs identity; a lock belongs to a node, not a process). */
  readonly nodeName: string;
  /** `check_cfs_quorum`: the mount is writable only while this node is in the quorate partition. */
  quorate(): Promise<boolean>;
  /** Atomic cluster-wide create; EEXIST when it exists. */
  mkdir(path: string): Promise<void>;
  /** utime(0, mtime): on a lock dir, mtime 0 is an unlock request and `now` a renewal (writer node only). */
  utime(path: string, mtimeSeconds: number): Promise<void>;
  rmdir(path: string): Promise<void>;
  /** Writes a small file (write to a temporary name, then rename, as pmxcfs users do). */
  writeFile(path: string, text: string): Promise<void>;
}

export const errno = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;

/** The real one: /etc/pve (or another mount of pmxcfs). */
export class Pmxcfs implements ClusterFs {
  constructor(
    readonly nodeName: string,
    private readonly root = "/etc/pve",
  ) {}

  async quorate(): Promise<boolean> {
    // pve-cluster's check_cfs_quorum: /etc/pve/local's write bit is the quorum flag.
    const st = await lstat(join(this.root, "local"));
    return (st.mode & 0o200) !== 0;
  }
  mkdir(path: string): Promise<void> {
    return mkdir(join(this.root, path)).then(() => undefined);
  }
  utime(path: string, mtimeSeconds: number): Promise<void> {
    return utimes(join(this.root, path), 0, mtimeSeconds);
  }
  rmdir(path: string): Promise<void> {
    return rmdir(join(this.root, path));
  }
  async writeFile(path: string, text: string): Promise<void> {
    const tmp = join(this.root, `${path}.tmp.${process.pid}`);
    await writeFile(tmp, text);
    await rename(tmp, join(this.root, path));
  }
}

/** mkdir of each missing level (pmxcfs's mkdir, like the kernel's, makes one level). */
export async function mkdirLevels(fs: ClusterFs, path: string): Promise<void> {
  const parts = path.split("/");
  for (let i = 1; i <= parts.length; i++) {
    try {
      await fs.mkdir(parts.slice(0, i).join("/"));
    } catch (err) {
      if (errno(err) !== "EEXIST") throw err;
    }
  }
}
