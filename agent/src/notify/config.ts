// `notifications` in the agent's config: targets (webhook, smtp, sendmail, gotify — the kinds
// Proxmox's own notification system has) and matchers that route a notification by severity,
// guest and stack to targets. Secrets (header values, passwords, tokens) come from files, never
// from the config itself, so the config can be world-readable.
import { isAbsolute } from "node:path";
import { z } from "@lull/shared";

const targetName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, { message: "must match ^[a-z0-9][a-z0-9_-]{0,31}$" });
const secretFile = z.string().min(1).refine(isAbsolute, { message: "must be an absolute path to a file holding the secret" });
const httpUrl = z.url({ protocol: /^https?$/, message: "must be an http:// or https:// URL" });
const email = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, { message: "must be an e-mail address (user@host)" });

export const SEVERITIES = ["info", "warning", "error"] as const;
export type Severity = (typeof SEVERITIES)[number];

const delivery = {
  /** More attempts after the first one fails (network error, 5xx, 408, 429; SMTP: any error). */
  retries: z.number().int().min(0).max(10).default(3),
  /** Wait before the first retry; doubled for each further one, capped at 5 minutes. */
  backoffMs: z.number().int().min(1).max(300_000).default(2_000),
  /** One attempt's time limit. */
  timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
};

const webhookTarget = z.strictObject({
  name: targetName,
  type: z.literal("webhook"),
  url: httpUrl,
  method: z.enum(["POST", "PUT"]).default("POST"),
  /** Header values are templates like the body; `{{ secrets.NAME }}` inserts a secret. */
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, { message: "must be a header name" }), z.string().max(4096)).default({}),
  /** Secrets by name, each read from a file at start (trailing newline dropped). */
  secrets: z.record(z.string().regex(/^[A-Za-z0-9_]{1,32}$/), secretFile).default({}),
  /** The body template: `{{ title }}` inserts raw text, `{{ json title }}` a JSON string; default a JSON object of every field. */
  body: z.string().max(65_536).optional(),
  ...delivery,
});

const smtpTarget = z.strictObject({
  name: targetName,
  type: z.literal("smtp"),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(25),
  /** `tls`: TLS from the first byte (465); `starttls`: required upgrade; `none`: plain (a local relay). */
  mode: z.enum(["tls", "starttls", "none"]).default("starttls"),
  user: z.string().min(1).optional(),
  passwordFile: secretFile.optional(),
  from: email,
  to: z.array(email).min(1),
  ...delivery,
});

const sendmailTarget = z.strictObject({
  name: targetName,
  type: z.literal("sendmail"),
  path: z.string().refine(isAbsolute, { message: "must be an absolute path" }).default("/usr/sbin/sendmail"),
  from: email,
  to: z.array(email).min(1),
  ...delivery,
});

const gotifyTarget = z.strictObject({
  name: targetName,
  type: z.literal("gotify"),
  url: httpUrl,
  tokenFile: secretFile,
  ...delivery,
});

export const targetSchema = z.discriminatedUnion("type", [webhookTarget, smtpTarget, sendmailTarget, gotifyTarget]);

const matcherSchema = z.strictObject({
  /** Targets this matcher sends to (names from `targets`). */
  targets: z.array(targetName).min(1),
  /** Severities that match; absent: every one. */
  severity: z.array(z.enum(SEVERITIES)).min(1).optional(),
  /** Guests that match (any guest the notification concerns: a schedule's, each one it covers); absent: every guest, and notifications without one. */
  guests: z.array(z.string().min(1)).min(1).optional(),
  /** Stacks that match (any stack the notification concerns); absent: every stack, and notifications without stacks. */
  stacks: z.array(z.string().min(1)).min(1).optional(),
});

export const notificationsConfigSchema = z
  .strictObject({
    targets: z.array(targetSchema).default([]),
    matchers: z.array(matcherSchema).default([]),
  })
  .superRefine((cfg, ctx) => {
    const names = new Set<string>();
    cfg.targets.forEach((t, i) => {
      if (names.has(t.name)) ctx.addIssue({ code: "custom", path: ["targets", i, "name"], message: `duplicate target ${t.name}` });
      names.add(t.name);
      if (t.type === "smtp" && (t.user === undefined) !== (t.passwordFile === undefined)) {
        ctx.addIssue({ code: "custom", path: ["targets", i, "user"], message: "user and passwordFile go together" });
      }
    });
    cfg.matchers.forEach((m, i) =>
      m.targets.forEach((name, j) => {
        if (!names.has(name)) ctx.addIssue({ code: "custom", path: ["matchers", i, "targets", j], message: `no target named ${name} (add it to notifications.targets)` });
      }),
    );
  });

export type NotificationsConfig = z.output<typeof notificationsConfigSchema>;
export type TargetConfig = NotificationsConfig["targets"][number];
export type MatcherConfig = NotificationsConfig["matchers"][number];
