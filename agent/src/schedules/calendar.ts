// Calendar events as Proxmox's `jobs.cfg` writes them (the systemd.time(7) subset proxmox-time
// implements): `[WEEKDAYS] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]]`, each field a list of
// values, ranges `a..b` and repetitions `start/step` (`*/15`), weekdays `mon..fri` / `sat,sun`,
// and the shorthands minutely, hourly, daily, weekly, monthly, yearly, quarterly, semiannually.
// A lone `*/15` or `15` is the minute field (`hourly` every hour at :00); a time without date or
// weekday runs every day. Evaluated in an explicit IANA time zone through the Intl API:
// - a wall time that does not exist (spring forward, `02:30` in Europe/Berlin's last March Sunday)
//   runs at the first instant after the gap (03:00 local), as mktime's normalisation does, so a
//   daily schedule never loses a day;
// - a wall time that occurs twice (fall back) runs once, at its first occurrence, when the event
//   names its hours (`02:30`); an event for every hour (`*/15`, `hourly`) is an interval and runs
//   in each real hour.
import { LullError } from "@lull/shared";

export interface CalendarEvent {
  readonly source: string;
  readonly weekdays: ReadonlySet<number>; // 0 = sunday … 6 = saturday
  readonly years: Matcher;
  readonly months: Matcher;
  readonly days: Matcher;
  readonly hours: Matcher;
  readonly minutes: Matcher;
  readonly seconds: Matcher;
  /** The hour field matches every hour: an interval, not a wall time. */
  readonly everyHour: boolean;
}

type Matcher = (value: number) => boolean;

const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const WEEKDAY_LONG = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

const SHORTHANDS: Record<string, string> = {
  minutely: "*:*:00",
  hourly: "*:00",
  daily: "00:00",
  weekly: "mon 00:00",
  monthly: "*-01 00:00",
  yearly: "01-01 00:00",
  annually: "01-01 00:00",
  quarterly: "01,04,07,10-01 00:00",
  semiannually: "01,07-01 00:00",
};

function bad(source: string, why: string): never {
  throw new LullError(
    "LULL_E_CONFIG_INVALID",
    `calendar event '${source}': ${why}; write it as Proxmox's jobs.cfg does, e.g. 'mon..fri 02:00', '*/15', 'sat 03:30' or 'daily'`,
  );
}

function parseNumber(source: string, text: string, min: number, max: number, what: string): number {
  if (!/^\d{1,4}$/.test(text)) bad(source, `'${text}' is not a number for the ${what}`);
  const n = Number(text);
  if (n < min || n > max) bad(source, `${what} ${n} is outside ${min}..${max}`);
  return n;
}

/** One field: `*`, lists of `v`, `a..b`, `v/step`, `a..b/step`, `* /step`. */
function parseField(source: string, text: string, min: number, max: number, what: string): Matcher {
  if (text === "*") return () => true;
  const parts = text.split(",");
  const tests: Matcher[] = [];
  for (const part of parts) {
    if (part === "") bad(source, `an empty entry in the ${what} field '${text}'`);
    const [range, stepText, extra] = part.split("/");
    if (extra !== undefined) bad(source, `'${part}' has two '/' in the ${what} field`);
    let lo: number;
    let hi: number;
    if (range === "*") {
      lo = min;
      hi = max;
    } else if (range!.includes("..")) {
      const [a, b, more] = range!.split("..");
      if (more !== undefined) bad(source, `'${range}' is not a range`);
      lo = parseNumber(source, a!, min, max, what);
      hi = parseNumber(source, b!, min, max, what);
      if (lo > hi) bad(source, `the range '${range}' runs backwards`);
    } else {
      lo = parseNumber(source, range!, min, max, what);
      hi = stepText === undefined ? lo : max;
    }
    if (stepText === undefined) {
      tests.push((v) => v >= lo && v <= hi);
    } else {
      const step = parseNumber(source, stepText, 1, max + 1, `${what} step`);
      tests.push((v) => v >= lo && v <= hi && (v - lo) % step === 0);
    }
  }
  return (v) => tests.some((t) => t(v));
}

function weekdayIndex(source: string, name: string): number {
  const lower = name.toLowerCase();
  let i = WEEKDAYS.indexOf(lower);
  if (i < 0) i = WEEKDAY_LONG.indexOf(lower);
  if (i < 0) bad(source, `'${name}' is not a weekday (mon, tue, wed, thu, fri, sat, sun)`);
  return i;
}

function parseWeekdays(source: string, text: string): Set<number> {
  const days = new Set<number>();
  for (const part of text.split(",")) {
    if (part.includes("..")) {
      const [a, b] = part.split("..");
      const from = weekdayIndex(source, a!);
      const to = weekdayIndex(source, b!);
      // Monday-first order as systemd: `fri..mon` is not allowed, `mon..sun` is.
      const order = (d: number) => (d + 6) % 7;
      if (order(from) > order(to)) bad(source, `the weekday range '${part}' runs backwards`);
      for (let d = order(from); d <= order(to); d++) days.add((d + 1) % 7);
    } else {
      days.add(weekdayIndex(source, part));
    }
  }
  return days;
}

const isWeekdayToken = (token: string) => /^[a-z]/i.test(token);

/** Parses a calendar event; throws LULL_E_CONFIG naming what is wrong. */
export function parseCalendarEvent(input: string): CalendarEvent {
  const source = input.trim();
  if (source === "") bad(input, "it is empty");
  const lower = source.toLowerCase();
  const expanded = SHORTHANDS[lower] ?? source;
  const tokens = expanded.split(/\s+/);
  let weekdays = new Set<number>([0, 1, 2, 3, 4, 5, 6]);
  if (tokens.length > 0 && isWeekdayToken(tokens[0]!)) {
    weekdays = parseWeekdays(source, tokens.shift()!);
  }
  let years: Matcher = () => true;
  let months: Matcher = () => true;
  let days: Matcher = () => true;
  let hours: Matcher = () => true;
  let minutes: Matcher = () => true;
  let seconds: Matcher = (s) => s === 0;
  let sawDate = false;
  let sawTime = false;
  for (const token of tokens) {
    if (token.includes(":")) {
      if (sawTime) bad(source, `two times ('${token}')`);
      sawTime = true;
      const parts = token.split(":");
      if (parts.length > 3) bad(source, `'${token}' has too many ':'`);
      hours = parseField(source, parts[0]!, 0, 23, "hour");
      minutes = parseField(source, parts[1]!, 0, 59, "minute");
      if (parts.length === 3) seconds = parseField(source, parts[2]!, 0, 59, "second");
    } else if (token.includes("-")) {
      if (sawDate || sawTime) bad(source, `the date '${token}' must come before the time, once`);
      sawDate = true;
      const parts = token.split("-");
      if (parts.length > 3) bad(source, `'${token}' has too many '-'`);
      if (parts.length === 3) years = parseField(source, parts.shift()!, 1970, 9999, "year");
      months = parseField(source, parts[0]!, 1, 12, "month");
      days = parseField(source, parts[1]!, 1, 31, "day");
    } else if (isWeekdayToken(token)) {
      bad(source, `'${token}' is not understood here (weekdays come first)`);
    } else {
      // A lone field is the minute: `*/15`, `5`, `0/10`.
      if (sawTime) bad(source, `'${token}' after the time`);
      sawTime = true;
      minutes = parseField(source, token, 0, 59, "minute");
    }
  }
  if (!sawTime) {
    // `mon` or `*-01`: at midnight.
    hours = (h) => h === 0;
    minutes = (m) => m === 0;
  }
  let everyHour = true;
  for (let h = 0; h < 24; h++) if (!hours(h)) everyHour = false;
  return { source, weekdays, years, months, days, hours, minutes, seconds, everyHour };
}

/** Checks an IANA time zone name; throws LULL_E_CONFIG naming it. */
export function checkTimeZone(zone: string): void {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
  } catch {
    throw new LullError("LULL_E_CONFIG_INVALID", `time zone '${zone}' is not an IANA time zone; use a name like 'Europe/Berlin' or 'UTC'`);
  }
}

interface Local {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  weekday: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
      weekday: "short",
    });
    formatters.set(zone, f);
  }
  return f;
}

/** The wall-clock fields of an instant in a time zone. */
export function localFields(at: number, zone: string): Local {
  const out: Record<string, string> = {};
  for (const p of formatter(zone).formatToParts(new Date(at))) out[p.type] = p.value;
  return {
    year: Number(out.year),
    month: Number(out.month),
    day: Number(out.day),
    hour: Number(out.hour),
    minute: Number(out.minute),
    second: Number(out.second),
    weekday: WEEKDAYS.indexOf(out.weekday!.toLowerCase()),
  };
}

function dateMatches(ev: CalendarEvent, l: Local): boolean {
  return ev.weekdays.has(l.weekday) && ev.years(l.year) && ev.months(l.month) && ev.days(l.day);
}

const MINUTE = 60_000;
const HOUR = 3_600_000;
/** No schedule waits longer than this for its next tick (a year of ticks that never come is a typo). */
const HORIZON = 5 * 366 * 24 * HOUR;

/**
 * The first tick strictly after `after` (ms since the epoch), or undefined when none comes within
 * five years (e.g. `02-30`). Ticks are whole seconds.
 */
export function nextTick(ev: CalendarEvent, zone: string, after: number): number | undefined {
  // Walk real instants, jumping by the coarsest field that does not match. Each instant's wall
  // time comes from Intl, so offsets and DST transitions are the zone database's.
  let t = Math.floor(after / 1000) * 1000 + 1000;
  const end = after + HORIZON;
  while (t <= end) {
    const l = localFields(t, zone);
    if (!dateMatches(ev, l)) {
      // Jump to an hour before the next local midnight (a DST change on the way moves midnight by
      // at most an hour), then walk by quarter hours.
      const toMidnight = ((23 - l.hour) * 60 + (59 - l.minute)) * MINUTE + (60 - l.second) * 1000;
      t = toMidnight > 2 * HOUR ? t + toMidnight - HOUR - 15 * MINUTE : nextWholeHour(t);
      continue;
    }
    if (!ev.hours(l.hour)) {
      const gap = gapAt(ev, zone, t, l);
      if (gap !== undefined) return gap;
      t = nextWholeHour(t);
      continue;
    }
    if (!ev.minutes(l.minute)) {
      t = Math.floor(t / MINUTE) * MINUTE + MINUTE;
      continue;
    }
    if (!ev.seconds(l.second)) {
      t += 1000;
      continue;
    }
    // Fall back: the same wall time an hour ago means this is its second occurrence.
    if (!ev.everyHour && isRepeatedWallTime(t, zone, l)) {
      t += 1000;
      continue;
    }
    return t;
  }
  return undefined;
}

function nextWholeHour(t: number): number {
  // Whole UTC quarter hours cover every zone offset (all are multiples of 15 minutes).
  return Math.floor(t / (15 * MINUTE)) * 15 * MINUTE + 15 * MINUTE;
}

function isRepeatedWallTime(t: number, zone: string, l: Local): boolean {
  for (const back of [HOUR, 30 * MINUTE]) {
    const p = localFields(t - back, zone);
    if (p.year === l.year && p.month === l.month && p.day === l.day && p.hour === l.hour && p.minute === l.minute && p.second === l.second) {
      return true;
    }
  }
  return false;
}

/**
 * Spring forward: at `t` the wall clock jumped over hours. If a matching wall time lay inside the
 * skipped stretch (between the previous instant's wall time and this one), the tick is `t`.
 */
function gapAt(ev: CalendarEvent, zone: string, t: number, l: Local): number | undefined {
  const before = localFields(t - 1000, zone);
  const wallNow = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second);
  const wallBefore = Date.UTC(before.year, before.month - 1, before.day, before.hour, before.minute, before.second);
  if (wallNow - wallBefore <= 1000) return undefined;
  for (let w = Math.ceil((wallBefore + 1000) / MINUTE) * MINUTE; w < wallNow; w += MINUTE) {
    const d = new Date(w);
    const skipped: Local = {
      year: d.getUTCFullYear(),
      month: d.getUTCMonth() + 1,
      day: d.getUTCDate(),
      hour: d.getUTCHours(),
      minute: d.getUTCMinutes(),
      second: d.getUTCSeconds(),
      weekday: d.getUTCDay(),
    };
    if (dateMatches(ev, skipped) && ev.hours(skipped.hour) && ev.minutes(skipped.minute) && ev.seconds(skipped.second)) return t;
  }
  return undefined;
}

/** Every tick in (after, until]. */
export function ticksBetween(ev: CalendarEvent, zone: string, after: number, until: number, limit = 100_000): number[] {
  const out: number[] = [];
  let t = nextTick(ev, zone, after);
  while (t !== undefined && t <= until && out.length < limit) {
    out.push(t);
    t = nextTick(ev, zone, t);
  }
  return out;
}
