// The status page's HTTP side, mounted on the metrics listener: GET /status (the page),
// GET /status/events (server-sent events), POST /status/login (a token into a cookie).
// Read-only. Operators only: a bearer token of scope `operator` in `Authorization: Bearer …` or
// in the `lull_status` cookie the login form sets; the token is checked against the token store
// on every request, so revoking it ends access at once. Guest tokens are refused (403).
import type { IncomingMessage, ServerResponse } from "node:http";
import { isTerminal, asLullError, type Clock, type HttpHandler, type Logger } from "@lull/shared";
import { describeScope, type Principal } from "../auth/principal.js";
import type { TokenStore } from "../auth/token-store.js";
import type { EventBus } from "../events/bus.js";
import type { JobStore } from "../jobs/store.js";
import type { StatusConfig } from "./config.js";
import { jobView, stackHistories } from "./model.js";
import { CONTENT_SECURITY_POLICY, chartsSection, jobSection, loginPage, statusPage } from "./page.js";

export type { HttpHandler };

export interface StatusPage {
  handle: HttpHandler;
  /** Ends every open event stream. */
  close(): void;
}

export interface StatusPageDeps {
  config: StatusConfig;
  node: string;
  guests: readonly string[];
  store: JobStore;
  bus: EventBus;
  tokens: TokenStore;
  clock: Clock;
  log: Logger;
}

export const COOKIE = "lull_status";
const BEARER = /^Bearer ([\x21-\x7e]{1,256})$/;
/** Changes of one job within this window go out as one update (progress events come in bursts). */
const COALESCE_MS = 150;
const HEARTBEAT_MS = 15_000;
const MAX_LOGIN_BODY = 2_048;
/** Open event streams at most (each holds a bus subscription and re-renders on every change). */
export const MAX_STREAMS = 32;

function cookieToken(header: string | undefined): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name !== COOKIE) continue;
    try {
      return decodeURIComponent(value.join("="));
    } catch {
      return ""; // a mangled cookie: refused like any other bad token
    }
  }
  return undefined;
}

const SECURITY_HEADERS = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
} as const;

export function createStatusPage(deps: StatusPageDeps): StatusPage {
  const log = deps.log.child({ component: "status" });
  const streams = new Set<ServerResponse>();

  /** The operator behind the request, or the reason there is none (status and message). */
  function authenticate(req: IncomingMessage): { principal: Principal } | { status: 401 | 403; message: string } {
    const header = req.headers.authorization;
    let token: string | undefined;
    if (header !== undefined) {
      const m = BEARER.exec(header);
      if (!m) return { status: 401, message: "the Authorization header is not one `Bearer <token>`" };
      token = m[1];
    } else {
      token = cookieToken(req.headers.cookie);
    }
    if (token === undefined) return { status: 401, message: "sign in with an operator token" };
    return operatorOf(token);
  }

  function operatorOf(token: string): { principal: Principal } | { status: 401 | 403; message: string } {
    let principal: Principal;
    try {
      principal = deps.tokens.authenticate(token, deps.clock.now());
    } catch (err) {
      return { status: 401, message: asLullError(err).message };
    }
    if (principal.kind !== "operator") {
      return { status: 403, message: `the status page is for operators; token ${principal.id} is scoped to ${describeScope(principal)}` };
    }
    return { principal };
  }

  function refuse(req: IncomingMessage, res: ServerResponse, status: 401 | 403, message: string): void {
    log.info({ path: req.url, status, err: message, peer: req.socket.remoteAddress }, "status request refused");
    const html = (req.headers.accept ?? "").includes("text/html");
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      "content-type": html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8",
      ...(status === 401 ? { "www-authenticate": 'Bearer realm="lull-status"' } : {}),
    });
    res.end(html ? loginPage(message) : `${message}\n`);
  }

  function render(): string {
    const now = deps.clock.now();
    const running = deps.store.nonTerminalJobs().map((j) => jobView(deps.store, j, now));
    const recent = deps.store
      .listJobs({ limit: deps.config.recentJobs * 2 })
      .filter((j) => isTerminal(j.phase))
      .slice(0, deps.config.recentJobs)
      .map((j) => jobView(deps.store, j, now));
    return statusPage({ node: deps.node, running, recent, histories: histories(), downtimeBackups: deps.config.downtimeBackups, now });
  }

  function histories() {
    return deps.guests.flatMap((g) => stackHistories(deps.store, g, deps.config.downtimeBackups));
  }

  function send(res: ServerResponse, event: string, data: unknown): void {
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  function jobUpdate(id: string): { id: string; html: string; running: boolean } | undefined {
    const job = deps.store.getJob(id);
    if (!job) return undefined;
    const view = jobView(deps.store, job, deps.clock.now());
    return { id, html: jobSection(view), running: view.running };
  }

  function openStream(req: IncomingMessage, res: ServerResponse): void {
    if (req.method === "HEAD") {
      res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/event-stream; charset=utf-8" }).end();
      return;
    }
    if (streams.size >= MAX_STREAMS) {
      res.writeHead(503, { ...SECURITY_HEADERS, "retry-after": "10", "content-type": "text/plain" }).end(`at most ${MAX_STREAMS} status pages may follow this agent at once; close one\n`);
      return;
    }
    res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/event-stream; charset=utf-8", connection: "keep-alive", "x-accel-buffering": "no" });
    res.write(": lull status events\nretry: 2000\n\n");
    streams.add(res);
    const pending = new Set<string>();
    let timer: NodeJS.Timeout | undefined;
    let chartsDue = false;
    const flush = (): void => {
      timer = undefined;
      try {
        for (const id of pending) {
          const update = jobUpdate(id);
          if (update) send(res, "job", update);
        }
        if (chartsDue) send(res, "charts", { html: chartsSection(histories(), deps.config.downtimeBackups) });
      } catch (err) {
        log.error({ err }, "status update failed");
      }
      pending.clear();
      chartsDue = false;
    };
    const unsubscribe = deps.bus.subscribe({}, (event) => {
      if (!event.jobId) return;
      pending.add(event.jobId);
      if (isTerminal(event.phase)) chartsDue = true;
      timer ??= setTimeout(flush, COALESCE_MS);
    });
    // The running jobs as they are now: a (re)connecting page misses nothing that is still going.
    for (const job of deps.store.nonTerminalJobs()) pending.add(job.id);
    timer = setTimeout(flush, 0);
    const heartbeat = setInterval(() => res.write(": keep-alive\n\n"), HEARTBEAT_MS);
    heartbeat.unref();
    const end = (): void => {
      unsubscribe();
      clearInterval(heartbeat);
      if (timer) clearTimeout(timer);
      streams.delete(res);
    };
    req.once("close", end);
    res.once("close", end);
  }

  function login(req: IncomingMessage, res: ServerResponse): void {
    let body = "";
    let tooLong = false;
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      if (tooLong) return;
      body += chunk;
      if (body.length > MAX_LOGIN_BODY) tooLong = true;
    });
    req.on("end", () => {
      if (tooLong) {
        res.writeHead(413, { ...SECURITY_HEADERS, "content-type": "text/plain" }).end(`the login form is at most ${MAX_LOGIN_BODY} bytes\n`);
        return;
      }
      const token = new URLSearchParams(body).get("token")?.trim() ?? "";
      const who = operatorOf(token);
      if ("status" in who) {
        refuse(req, res, who.status, token === "" ? "the form needs a token" : who.message);
        return;
      }
      log.info({ tokenId: who.principal.id, peer: req.socket.remoteAddress }, "status page sign-in");
      res.writeHead(303, {
        ...SECURITY_HEADERS,
        location: "/status",
        "set-cookie": `${COOKIE}=${encodeURIComponent(token)}; Path=/status; HttpOnly; SameSite=Strict; Max-Age=${deps.config.sessionMaxAgeS}`,
      });
      res.end();
    });
  }

  const handle: HttpHandler = (req, res) => {
    const path = (req.url ?? "/").split("?")[0] as string;
    if (path !== "/status" && !path.startsWith("/status/")) return false;
    try {
      route(path, req, res);
    } catch (err) {
      // Never out of here: a throw in a request listener would take the agent down.
      log.error({ err, path }, "status page failed");
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("the status page failed; see the agent's log\n");
    }
    return true;
  };

  function route(path: string, req: IncomingMessage, res: ServerResponse): void {
    if (path === "/status/login") {
      if (req.method !== "POST") {
        res.writeHead(405, { ...SECURITY_HEADERS, allow: "POST", "content-type": "text/plain" }).end("sign in with POST /status/login (form field token)\n");
      } else {
        login(req, res);
      }
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { ...SECURITY_HEADERS, allow: "GET, HEAD", "content-type": "text/plain" }).end("the status page is read-only: GET only\n");
      return;
    }
    if (path !== "/status" && path !== "/status/events") {
      res.writeHead(404, { ...SECURITY_HEADERS, "content-type": "text/plain" }).end("not found: the page is /status, its event stream /status/events\n");
      return;
    }
    const who = authenticate(req);
    if ("status" in who) {
      refuse(req, res, who.status, who.message);
      return;
    }
    if (path === "/status/events") {
      openStream(req, res);
    } else {
      const html = render();
      res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8" }).end(req.method === "HEAD" ? undefined : html);
    }
  }

  return {
    handle,
    close() {
      for (const res of [...streams]) res.end();
      streams.clear();
    },
  };
}
