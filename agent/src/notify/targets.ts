// One sender per kind of target. A sender makes one attempt and throws a DeliveryError saying
// whether another attempt can help; the dispatcher does the retries.
import { readFileSync } from "node:fs";
import { LullError } from "@lull/shared";
import nodemailer from "nodemailer";
import type { TargetConfig } from "./config.js";
import { checkTemplate, defaultBody, renderTemplate, type Notification } from "./notification.js";

export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export interface Sender {
  readonly name: string;
  readonly type: TargetConfig["type"];
  send(n: Notification, signal: AbortSignal): Promise<void>;
  close(): void;
}

function readSecret(path: string, key: string): string {
  try {
    return readFileSync(path, "utf8").replace(/\r?\n$/, "");
  } catch (err) {
    throw new LullError("LULL_E_CONFIG_INVALID", `${key}: cannot read the secret file ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)}); create it (mode 0600) or fix the path`);
  }
}

/** HTTP statuses after which another attempt may succeed. */
const RETRYABLE_STATUS = new Set([408, 425, 429]);

async function post(url: string, init: { method: string; headers: Record<string, string>; body: string }, signal: AbortSignal): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal, redirect: "error" });
  } catch (err) {
    const cause = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
    // fetch refuses the ports browsers block (6000, 6667, ...): no retry helps, the URL must change.
    if (cause === "bad port") throw new DeliveryError(`${init.method} ${new URL(url).origin}: port refused by the HTTP client (a blocked port); use another port`, false);
    throw new DeliveryError(`${init.method} ${new URL(url).origin}: ${cause}`, true);
  }
  await res.arrayBuffer().catch(() => undefined);
  if (res.ok) return;
  throw new DeliveryError(`${init.method} ${new URL(url).origin}: HTTP ${res.status}`, res.status >= 500 || RETRYABLE_STATUS.has(res.status));
}

export function createSender(target: TargetConfig, key: string): Sender {
  switch (target.type) {
    case "webhook": {
      const secrets = Object.fromEntries(Object.entries(target.secrets).map(([name, file]) => [name, readSecret(file, `${key}.secrets.${name}`)]));
      const names = Object.keys(secrets);
      for (const [header, value] of Object.entries(target.headers)) checkTemplate(value, names, `${key}.headers.${header}`);
      if (target.body !== undefined) checkTemplate(target.body, names, `${key}.body`);
      const hasType = Object.keys(target.headers).some((h) => h.toLowerCase() === "content-type");
      return {
        name: target.name,
        type: target.type,
        send: (n, signal) =>
          post(
            target.url,
            {
              method: target.method,
              headers: {
                ...(hasType ? {} : { "content-type": "application/json" }),
                ...Object.fromEntries(Object.entries(target.headers).map(([h, v]) => [h, renderTemplate(v, n, secrets)])),
              },
              body: target.body === undefined ? defaultBody(n) : renderTemplate(target.body, n, secrets),
            },
            signal,
          ),
        close() {},
      };
    }
    case "gotify": {
      const token = readSecret(target.tokenFile, `${key}.tokenFile`);
      const url = new URL("message", target.url.endsWith("/") ? target.url : `${target.url}/`).toString();
      const priority = { error: 8, warning: 5, info: 2 } as const;
      return {
        name: target.name,
        type: target.type,
        send: (n, signal) =>
          post(
            url,
            {
              method: "POST",
              headers: { "content-type": "application/json", "x-gotify-key": token },
              body: JSON.stringify({ title: n.title, message: n.message, priority: priority[n.severity], extras: { "lull::notification": n } }),
            },
            signal,
          ),
        close() {},
      };
    }
    case "smtp":
    case "sendmail": {
      const transport =
        target.type === "sendmail"
          ? nodemailer.createTransport({ sendmail: true, path: target.path, newline: "unix" })
          : nodemailer.createTransport({
              host: target.host,
              port: target.port,
              secure: target.mode === "tls",
              requireTLS: target.mode === "starttls",
              ignoreTLS: target.mode === "none",
              connectionTimeout: target.timeoutMs,
              greetingTimeout: target.timeoutMs,
              socketTimeout: target.timeoutMs,
              ...(target.user && target.passwordFile ? { auth: { user: target.user, pass: readSecret(target.passwordFile, `${key}.passwordFile`) } } : {}),
            });
      return {
        name: target.name,
        type: target.type,
        async send(n) {
          try {
            await transport.sendMail({
              from: target.from,
              to: target.to,
              subject: `[lull ${n.severity}] ${n.title}`,
              text: `${n.message}\n\nnode: ${n.node}\nguest: ${n.guest}\nstacks: ${n.stacks.join(", ") || "-"}\njob: ${n.jobId}\ncode: ${n.code || "-"}\nat: ${n.timestamp}\n`,
              headers: { "X-Lull-Severity": n.severity, "X-Lull-Event": n.event },
            });
          } catch (err) {
            throw new DeliveryError(`${target.type}: ${(err as Error).message}`, true);
          }
        },
        close: () => transport.close(),
      };
    }
  }
}
