// A Proxmox task id, parsed as PVE::UPID::decode does:
//   UPID:<node>:<pid %08X>:<pstart %08X>:<starttime %08X>:<type>:<id>:<user>:
// pstart (the process start time in clock ticks, /proc/<pid>/stat field 22) is printed with %08X and
// so grows to 9 hex digits once a node has been up for more than 2^32 ticks (~497 days at 100 Hz);
// decode accepts 8 or 9. The id is empty for a vzdump of several guests (PVE::API2::VZDump passes
// the vmid only when there is exactly one).

export interface Upid {
  node: string;
  pid: number;
  pstart: number;
  starttime: number;
  type: string;
  id: string;
  user: string;
}

const UPID = /^UPID:([a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$/;

/** The UPID's fields, or undefined when the text is not a UPID. */
export function parseUpid(text: string): Upid | undefined {
  const m = UPID.exec(text.trim());
  if (!m) return undefined;
  return {
    node: m[1]!,
    pid: parseInt(m[2]!, 16),
    pstart: parseInt(m[3]!, 16),
    starttime: parseInt(m[4]!, 16),
    type: m[5]!,
    id: m[6]!,
    user: m[7]!,
  };
}
