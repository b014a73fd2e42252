// Renders the members table as lines of blessed tag markup.

import type { MemberState } from "./monitor.ts";

/** One row of the table, with null for values the console has not learned. */
export interface MemberRow {
  id: string;
  clientAddr: string;
  raftAddr: string;
  role: string | null;
  voter: boolean;
  term: number | null;
  lastLogIndex: number | null;
  lastLogTerm: number | null;
  commitIndex: number | null;
  appliedIndex: number | null;
  lag: number | null;
  /** Time since the console's latest reply from the member, in ms, or null if it never replied. */
  contactAgeMs: number | null;
  reachable: boolean | null;
  leader: boolean;
}

/** Escapes `{` and `}` so that blessed shows text from the cluster as is instead of reading tags in it. */
export function escapeTags(text: string): string {
  return text.replace(/[{}]/g, (brace) => (brace === "{" ? "{open}" : "{close}"));
}

/** Builds the rows from the monitor's members, marking `leaderId`, the leader the cluster reports. */
export function memberRows(members: readonly MemberState[], leaderId: string | null, nowMs: number): MemberRow[] {
  return members.map((member) => {
    const info = member.info;
    return {
      id: member.id,
      clientAddr: member.clientAddr,
      raftAddr: member.raftAddr,
      role: info?.role ?? null,
      voter: member.voter,
      term: info?.term ?? null,
      lastLogIndex: info?.lastLogIndex ?? null,
      lastLogTerm: info?.lastLogTerm ?? null,
      commitIndex: info?.commitIndex ?? null,
      appliedIndex: info?.appliedIndex ?? null,
      lag: member.lag,
      contactAgeMs: member.lastContactMs === null ? null : Math.max(0, nowMs - member.lastContactMs),
      reachable: member.reachable,
      leader: member.id === leaderId,
    };
  });
}

/** Formats a duration for the CONTACT column: 0.4s, 12s, 5m, 3h. */
export function formatAge(ms: number | null): string {
  if (ms === null) return "never";
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 60_000) return `${Math.floor(ms / 1000)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m`;
  return `${Math.floor(ms / 3_600_000)}h`;
}

function show(value: number | null): string {
  return value === null ? "-" : String(value);
}

interface Column {
  header: string;
  value: (row: MemberRow) => string;
  alignRight: boolean;
  /** Returns the blessed color tag of a cell, such as red-fg for a down member, or null for the default. */
  color?: (row: MemberRow) => string | null;
}

const ID_MAX_WIDTH = 16;

const ID: Column = {
  header: "ID",
  value: (row) => (row.id.length > ID_MAX_WIDTH ? `${row.id.slice(0, ID_MAX_WIDTH - 1)}~` : row.id),
  alignRight: false,
};
const CLIENT: Column = { header: "CLIENT ADDR", value: (row) => row.clientAddr, alignRight: false };
const RAFT: Column = { header: "RAFT ADDR", value: (row) => row.raftAddr, alignRight: false };
const ROLE: Column = {
  header: "ROLE",
  value: (row) => {
    if (row.role === null) return "?";
    // An unreachable member's role is the last one it reported, so it is shown in parentheses.
    return row.reachable === false ? `(${row.role})` : row.role;
  },
  alignRight: false,
  color: (row) => (row.role === "candidate" || row.role === "precandidate" ? "yellow-fg" : null),
};
const VOTER: Column = { header: "VOTER", value: (row) => (row.voter ? "yes" : "no"), alignRight: false };
const TERM: Column = { header: "TERM", value: (row) => show(row.term), alignRight: true };
const LAST_LOG: Column = {
  header: "LAST LOG",
  value: (row) => (row.lastLogIndex === null ? "-" : `${row.lastLogIndex}/${row.lastLogTerm}`),
  alignRight: true,
};
const COMMIT: Column = { header: "COMMIT", value: (row) => show(row.commitIndex), alignRight: true };
const APPLIED: Column = { header: "APPLIED", value: (row) => show(row.appliedIndex), alignRight: true };
const LAG: Column = { header: "LAG", value: (row) => show(row.lag), alignRight: true };
const CONTACT: Column = { header: "CONTACT", value: (row) => formatAge(row.contactAgeMs), alignRight: true };
const HEALTH: Column = {
  header: "HEALTH",
  value: (row) => {
    if (row.reachable === null) return "?";
    return row.reachable ? "up" : "down";
  },
  alignRight: false,
  color: (row) => {
    if (row.reachable === null) return null;
    return row.reachable ? "green-fg" : "red-fg";
  },
};
const STATE_COLUMNS = [ROLE, VOTER, TERM, LAST_LOG, COMMIT, APPLIED, LAG, CONTACT, HEALTH];
/** The state columns for when the narrow layout does not fit either: LAST LOG and CONTACT are left out. */
const COMPACT_STATE_COLUMNS = [ROLE, VOTER, TERM, COMMIT, APPLIED, LAG, HEALTH];
/** The last resort: HEALTH goes too, as a down member's role is already in parentheses. */
const MINIMAL_STATE_COLUMNS = [ROLE, VOTER, TERM, COMMIT, APPLIED, LAG];

/** Width of the leader mark and the space after it. */
const MARK_WIDTH = 2;

function columnWidths(columns: Column[], rows: MemberRow[]): number[] {
  return columns.map((column) => Math.max(column.header.length, ...rows.map((row) => column.value(row).length)));
}

function lineWidth(widths: number[], gap: number): number {
  return MARK_WIDTH + widths.reduce((sum, width) => sum + width, 0) + gap * (widths.length - 1);
}

function pad(text: string, width: number, alignRight: boolean): string {
  return alignRight ? text.padStart(width) : text.padEnd(width);
}

function renderCells(columns: Column[], widths: number[], gap: number, row: MemberRow | null): string {
  const cells = columns.map((column, index) => {
    const text = escapeTags(pad(row === null ? column.header : column.value(row), widths[index], column.alignRight));
    const color = row === null ? null : (column.color?.(row) ?? null);
    return color === null ? text : `{${color}}${text}{/${color}}`;
  });
  return cells.join(" ".repeat(gap));
}

/**
 * Returns the table as lines of blessed markup that fit `width` columns where
 * possible. The addresses get their own columns when they fit, and a second
 * line under each member otherwise, so the table also fits 80 columns. Below
 * that, LAST LOG and CONTACT are left out, and then HEALTH, which fits 60
 * columns with ids as long as node-1 and indexes of up to nine digits. The
 * leader is marked with `*` and drawn in bold green.
 */
export function renderMembersTable(rows: MemberRow[], width: number): string[] {
  const wide = [ID, CLIENT, RAFT, ...STATE_COLUMNS];
  const narrow = [ID, ...STATE_COLUMNS];
  const compact = [ID, ...COMPACT_STATE_COLUMNS];
  const minimal = [ID, ...MINIMAL_STATE_COLUMNS];
  const layouts: Array<{ columns: Column[]; gap: number }> = [
    { columns: wide, gap: 2 },
    { columns: wide, gap: 1 },
    { columns: narrow, gap: 2 },
    { columns: narrow, gap: 1 },
    { columns: compact, gap: 1 },
    { columns: minimal, gap: 1 },
  ];
  const layout = layouts.find(({ columns, gap }) => lineWidth(columnWidths(columns, rows), gap) <= width) ?? layouts[layouts.length - 1];
  const widths = columnWidths(layout.columns, rows);
  const addressLine = layout.columns !== wide;

  const lines = [`{bold}${" ".repeat(MARK_WIDTH)}${renderCells(layout.columns, widths, layout.gap, null)}{/bold}`];
  for (const row of rows) {
    let line = `${row.leader ? "*" : " "} ${renderCells(layout.columns, widths, layout.gap, row)}`;
    if (row.leader) line = `{bold}{green-fg}${line}{/green-fg}{/bold}`;
    lines.push(line);
    if (addressLine) lines.push(`${" ".repeat(MARK_WIDTH + 2)}client ${escapeTags(row.clientAddr)}  raft ${escapeTags(row.raftAddr)}`);
  }
  return lines;
}
