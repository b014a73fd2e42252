import { describe, expect, test } from "bun:test";
import { escapeTags, formatAge, memberRows, renderMembersTable, type MemberRow } from "../../src/tui/members-table.ts";
import type { MemberState } from "../../src/tui/monitor.ts";

function row(id: string, overrides: Partial<MemberRow> = {}): MemberRow {
  return {
    id,
    clientAddr: "127.0.0.1:47101",
    raftAddr: "127.0.0.1:47111",
    role: "follower",
    voter: true,
    term: 12,
    lastLogIndex: 1234,
    lastLogTerm: 12,
    commitIndex: 1234,
    appliedIndex: 1233,
    lag: 0,
    contactAgeMs: 300,
    reachable: true,
    leader: false,
    ...overrides,
  };
}

const ROWS = [
  row("node-1", { role: "leader", leader: true }),
  row("node-2", { role: "candidate", lag: 20 }),
  row("node-3", { reachable: false, contactAgeMs: 75_000, voter: false }),
];

const BRACE_ESCAPES: Record<string, string> = { open: "{", close: "}" };

/** Removes blessed tags, and turns the escapes for braces back into braces. */
function plain(line: string): string {
  return line.replace(/\{(\/?[a-z-]+)\}/g, (_tag, name: string) => BRACE_ESCAPES[name] ?? "").trimEnd();
}

describe("renderMembersTable", () => {
  test("80 columns puts addresses below", () => {
    const lines = renderMembersTable(ROWS, 78).map(plain);
    expect(lines.length).toBe(1 + 2 * ROWS.length);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(78);
    expect(lines[0]).toContain("ID");
    expect(lines[0]).toContain("HEALTH");
    expect(lines[0]).not.toContain("CLIENT ADDR");
    expect(lines[2]).toBe("    client 127.0.0.1:47101  raft 127.0.0.1:47111");
  });

  test("60 columns leaves out last log and contact", () => {
    const rows = [...ROWS, row("node-4", { role: "precandidate" })];
    const lines = renderMembersTable(rows, 58).map(plain);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(58);
    expect(lines[0].split(/\s+/)).toEqual(["", "ID", "ROLE", "VOTER", "TERM", "COMMIT", "APPLIED", "LAG", "HEALTH"]);
    expect(lines[5].split(/\s+/)).toEqual(["", "node-3", "(follower)", "no", "12", "1234", "1233", "0", "down"]);
    expect(lines[6]).toBe("    client 127.0.0.1:47101  raft 127.0.0.1:47111");
  });

  test("60 columns, seven-digit indexes drop health", () => {
    const big = { lastLogIndex: 1_234_567, commitIndex: 1_234_567, appliedIndex: 1_234_566 };
    const rows = [
      row("node-1", { ...big, role: "leader", leader: true }),
      row("node-2", { ...big, role: "precandidate", reachable: false }),
      row("node-3", { ...big, reachable: null, role: null }),
    ];
    const lines = renderMembersTable(rows, 58).map(plain);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(58);
    expect(lines[0].split(/\s+/)).toEqual(["", "ID", "ROLE", "VOTER", "TERM", "COMMIT", "APPLIED", "LAG"]);
    expect(lines[3].split(/\s+/)).toEqual(["", "node-2", "(precandidate)", "yes", "12", "1234567", "1234566", "0"]);
    expect(lines[5].split(/\s+/)).toEqual(["", "node-3", "?", "yes", "12", "1234567", "1234566", "0"]);
  });

  test("wide screen uses address columns", () => {
    const lines = renderMembersTable(ROWS, 140).map(plain);
    expect(lines.length).toBe(1 + ROWS.length);
    expect(lines[0]).toContain("CLIENT ADDR");
    expect(lines[0]).toContain("RAFT ADDR");
    expect(lines[1]).toContain("127.0.0.1:47111");
  });

  test("leader is marked and colored", () => {
    const lines = renderMembersTable(ROWS, 78);
    expect(plain(lines[1]).startsWith("* node-1")).toBe(true);
    expect(lines[1]).toContain("{green-fg}");
    expect(plain(lines[3]).startsWith("  node-2")).toBe(true);
  });

  test("row shows every value", () => {
    const cells = plain(renderMembersTable(ROWS, 78)[3]).split(/\s+/);
    expect(cells).toEqual(["", "node-2", "candidate", "yes", "12", "1234/12", "1234", "1233", "20", "0.3s", "up"]);
  });

  test("down member keeps last role", () => {
    const cells = plain(renderMembersTable(ROWS, 78)[5]).split(/\s+/);
    expect(cells).toEqual(["", "node-3", "(follower)", "no", "12", "1234/12", "1234", "1233", "0", "1m", "down"]);
    expect(renderMembersTable(ROWS, 78)[5]).toContain("{red-fg}down");
  });

  test("unknown values are dashes", () => {
    const unknown = row("node-9", {
      role: null,
      term: null,
      lastLogIndex: null,
      lastLogTerm: null,
      commitIndex: null,
      appliedIndex: null,
      lag: null,
      contactAgeMs: null,
      reachable: null,
    });
    const cells = plain(renderMembersTable([unknown], 78)[1]).split(/\s+/);
    expect(cells).toEqual(["", "node-9", "?", "yes", "-", "-", "-", "-", "-", "never", "?"]);
  });

  test("braces in addresses are escaped", () => {
    const lines = renderMembersTable([row("node-1", { clientAddr: "{bold}:1" })], 78);
    expect(lines[2]).toContain("{open}bold{close}:1");
  });

  test("long ids are shortened", () => {
    const lines = renderMembersTable([row("a-very-long-node-identifier")], 78).map(plain);
    expect(lines[1]).toContain("a-very-long-nod~");
  });
});

describe("formatAge", () => {
  test("formats each range", () => {
    expect(formatAge(null)).toBe("never");
    expect(formatAge(0)).toBe("0.0s");
    expect(formatAge(9_949)).toBe("9.9s");
    expect(formatAge(12_500)).toBe("12s");
    expect(formatAge(5 * 60_000 + 1)).toBe("5m");
    expect(formatAge(3 * 3_600_000)).toBe("3h");
  });
});

describe("escapeTags", () => {
  test("escapes both braces", () => {
    expect(escapeTags("a{b}c")).toBe("a{open}b{close}c");
  });
});

describe("memberRows", () => {
  test("computes contact age and leader", () => {
    const member: MemberState = {
      id: "node-2",
      clientAddr: "127.0.0.1:47102",
      raftAddr: "127.0.0.1:47112",
      voter: true,
      info: null,
      reachable: false,
      error: "connection refused",
      lastContactMs: 1_000,
      lag: null,
    };
    const [result] = memberRows([member], "node-2", 4_500);
    expect(result.contactAgeMs).toBe(3_500);
    expect(result.leader).toBe(true);
    expect(result.role).toBeNull();
    expect(result.reachable).toBe(false);
  });
});
