// `metrics` in the agent's config: the Prometheus listener, off unless an address is given.
import { z } from "@lull/shared";

export const metricsConfigSchema = z.strictObject({
  /** `host:port` of the metrics HTTP listener (plain HTTP, read-only: GET /metrics); absent: no listener. Port 0 picks a free one. */
  address: z
    .string()
    .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { message: "must be host:port, e.g. 127.0.0.1:9750 or [::1]:9750" })
    .optional(),
});

export type MetricsConfig = z.output<typeof metricsConfigSchema>;
