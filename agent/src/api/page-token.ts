// Pagination of the list calls (ListJobs, ListGroups): a page ends at its oldest row, and its
// `next_page_token` names that row's position — `(created_at, id)`, the order the lists use —
// so the next page is a range read from an index that starts right after it, however long the
// history is (no OFFSET, which would read and discard every earlier row). The token is opaque to
// clients: `p1.<created_at>.<id>` in base64url. A row deleted meanwhile does not break a token; rows
// created meanwhile are newer, so they are on no later page (a list from the start shows them).
import { LullError } from "@lull/shared";

export interface PagePosition {
  createdAt: number;
  id: string;
}

const ID = /^[a-z]-[0-9a-z]{1,64}$/;

export function pageToken(position: PagePosition): string {
  return Buffer.from(`p1.${position.createdAt}.${position.id}`, "utf8").toString("base64url");
}

/** The position a token names; undefined for an empty token; LULL_E_INVALID_ARGUMENT for anything else. */
export function pagePosition(token: string | undefined, field = "page_token"): PagePosition | undefined {
  if (token === undefined || token === "") return undefined;
  const invalid = () =>
    new LullError("LULL_E_INVALID_ARGUMENT", `${field} is not a token this agent gave out (pass a response's next_page_token as it is, or none for the first page)`);
  if (token.length > 200 || !/^[A-Za-z0-9_-]+$/.test(token)) throw invalid();
  const m = /^p1\.(\d{1,16})\.(.+)$/.exec(Buffer.from(token, "base64url").toString("utf8"));
  if (!m || !ID.test(m[2]!)) throw invalid();
  const createdAt = Number(m[1]);
  if (!Number.isSafeInteger(createdAt)) throw invalid();
  return { createdAt, id: m[2]! };
}

/** `rows` was read with limit + 1: the page, and the token of the next one when there is more. */
export function pageOf<T>(rows: readonly T[], limit: number, position: (row: T) => PagePosition): { page: T[]; next: string } {
  if (rows.length <= limit) return { page: [...rows], next: "" };
  const page = rows.slice(0, limit);
  return { page, next: pageToken(position(page[page.length - 1]!)) };
}
