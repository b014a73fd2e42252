import { describe, expect, test } from "bun:test";
import { InfoFormatError, parseInfo, parseMemberLine } from "../../src/tui/info.ts";

// An INFO reply as `echokv serve` sends it from a leader, with CRLF line endings.
const LEADER_INFO = [
  "# Server",
  "echokv_version:0.1.0",
  "node_id:node-1",
  "cluster_id:74b601f8-4c7a-4d0f-a14e-b4c366ea0879",
  "client_addr:127.0.0.1:47101",
  "raft_addr:127.0.0.1:47111",
  "process_id:14745",
  "uptime_in_seconds:4",
  "",
  "# Raft",
  "role:leader",
  "term:2",
  "leader_id:node-1",
  "leader_addr:127.0.0.1:47101",
  "commit_index:6",
  "applied_index:5",
  "last_log_index:7",
  "last_log_term:2",
  "snapshot_index:0",
  "",
  "# Members",
  "members:2",
  "voters:1",
  "member0:id=node-1,raft_addr=127.0.0.1:47111,client_addr=127.0.0.1:47101,voter=yes,leader=yes,match_index=7,lag=0",
  "member1:id=node-4,raft_addr=[::1]:47114,client_addr=[::1]:47104,voter=no,leader=no,match_index=3,lag=4",
  "",
  "# Keyspace",
  "keys:0",
  "",
].join("\r\n");

describe("parseInfo", () => {
  test("reads server and raft fields", () => {
    const info = parseInfo(LEADER_INFO);
    expect(info.nodeId).toBe("node-1");
    expect(info.clientAddr).toBe("127.0.0.1:47101");
    expect(info.raftAddr).toBe("127.0.0.1:47111");
    expect(info.processId).toBe(14745);
    expect(info.role).toBe("leader");
    expect(info.term).toBe(2);
    expect(info.leaderId).toBe("node-1");
    expect(info.commitIndex).toBe(6);
    expect(info.appliedIndex).toBe(5);
    expect(info.lastLogIndex).toBe(7);
    expect(info.lastLogTerm).toBe(2);
  });

  test("reads members with lag", () => {
    const { members } = parseInfo(LEADER_INFO);
    expect(members).toEqual([
      { id: "node-1", raftAddr: "127.0.0.1:47111", clientAddr: "127.0.0.1:47101", voter: true, leader: true, matchIndex: 7, lag: 0 },
      { id: "node-4", raftAddr: "[::1]:47114", clientAddr: "[::1]:47104", voter: false, leader: false, matchIndex: 3, lag: 4 },
    ]);
  });

  test("empty leader_id is no leader", () => {
    const info = parseInfo(LEADER_INFO.replace("leader_id:node-1", "leader_id:").replace("role:leader", "role:candidate"));
    expect(info.leaderId).toBeNull();
    expect(info.role).toBe("candidate");
  });

  test("accepts LF line endings", () => {
    expect(parseInfo(LEADER_INFO.replaceAll("\r\n", "\n")).term).toBe(2);
  });

  test("missing field names it", () => {
    expect(() => parseInfo(LEADER_INFO.replace("term:2\r\n", ""))).toThrow(new InfoFormatError("INFO reply has no term field"));
  });

  test("missing member line names it", () => {
    expect(() => parseInfo(LEADER_INFO.replace("members:2", "members:3"))).toThrow("INFO reply has no member2 field");
  });

  test("malformed number names the field", () => {
    expect(() => parseInfo(LEADER_INFO.replace("commit_index:6", "commit_index:six"))).toThrow(
      'INFO field commit_index is not a whole number: "six"',
    );
  });
});

describe("parseMemberLine", () => {
  test("follower view has no lag", () => {
    const member = parseMemberLine("id=node-2,raft_addr=127.0.0.1:47112,client_addr=127.0.0.1:47102,voter=yes,leader=no");
    expect(member.matchIndex).toBeNull();
    expect(member.lag).toBeNull();
    expect(member.voter).toBe(true);
    expect(member.leader).toBe(false);
  });

  test("missing attribute names it", () => {
    expect(() => parseMemberLine("id=node-2,raft_addr=a:1,voter=yes,leader=no", "member1")).toThrow(
      "INFO field member1 has no client_addr attribute",
    );
  });

  test("attribute without value is rejected", () => {
    expect(() => parseMemberLine("id=node-2,junk", "member1")).toThrow('INFO field member1 has a malformed attribute "junk"');
  });
});
