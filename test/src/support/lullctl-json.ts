// The documents `lullctl --json` prints (lullctl/src/json-views.ts), as the tests read them: enum
// names, ISO timestamps, null for "not set". One description for every test that parses them.

export interface StackJson {
  stack: string;
  state: string;
  reason: string | null;
  downtimeMs: number;
  resumedEarly: boolean;
  acknowledgedAt: string | null;
  resumedAt: string | null;
}

export interface JobJson {
  id: string;
  guestId: string;
  phase: string;
  engine: string;
  mode: string;
  consistency: string;
  createdAt: string | null;
  snapshotAt: string | null;
  finishedAt: string | null;
  error: { code: string | null; message: string | null; phase: string } | null;
  archive: { path: string; bytes: number } | null;
  stacks: StackJson[];
  groupRunId: string | null;
}

export interface GroupJson {
  id: string;
  groupId: string | null;
  guestIds: string[];
  jobIds: string[];
  phase: string;
  consistency: string;
  createdAt: string | null;
  quiescedAt: string | null;
  snapshotAt: string | null;
  finishedAt: string | null;
  error: { code: string | null; message: string | null; phase: string; failedGuests: string[] } | null;
  members: JobJson[];
}
