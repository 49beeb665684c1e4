// `status` in the agent's config: the operator's status page, served on the metrics listener
// (`metrics.address`) under /status. It exists only when that listener does.
import { z } from "@lull/shared";

export const statusConfigSchema = z.strictObject({
  /** Serve /status on the metrics listener (default true; the listener itself is off by default). */
  enabled: z.boolean().default(true),
  /** How many ended jobs the page lists, newest first. */
  recentJobs: z.number().int().min(1).max(200).default(20),
  /** N: each stack's downtime chart covers its guest's last N backups. */
  downtimeBackups: z.number().int().min(2).max(500).default(30),
  /** How long a login cookie stays valid (the token behind it is checked on every request anyway). */
  sessionMaxAgeS: z.number().int().min(60).max(7 * 86_400).default(12 * 3_600),
});

export type StatusConfig = z.output<typeof statusConfigSchema>;
