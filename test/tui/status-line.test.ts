import { describe, expect, test } from "bun:test";
import { renderStatusLine } from "../../src/tui/status-line.ts";

const PUSHED = { nodeId: "node-1", addr: "127.0.0.1:5379", feed: "push" as const };
const LEADER = { id: "node-2", term: 14 };

describe("renderStatusLine", () => {
  test("80 columns gets the full wording", () => {
    expect(renderStatusLine(PUSHED, LEADER, 80)).toBe(" connected to node-1 127.0.0.1:5379 | leader node-2, term 14 | events pushed");
    expect(renderStatusLine({ ...PUSHED, feed: "polling" }, null, 80)).toBe(" connected to node-1 127.0.0.1:5379 | no leader known | events polled");
  });

  test("60 columns keeps the ids, the term and the feed", () => {
    const line = renderStatusLine(PUSHED, LEADER, 60);
    expect(line).toBe(" on node-1 127.0.0.1:5379 | leader node-2 term 14 | pushed");
    expect(line.length).toBeLessThanOrEqual(60);
  });

  test("40 columns drops the address and the feed", () => {
    expect(renderStatusLine(PUSHED, LEADER, 40)).toBe(" on node-1 | leader node-2 term 14");
  });

  test("not connected fits 40 columns", () => {
    expect(renderStatusLine(null, null, 80)).toBe("{red-fg} not connected: no member accepts a connection, retrying{/red-fg}");
    expect(renderStatusLine(null, null, 40)).toBe("{red-fg} not connected, retrying{/red-fg}");
  });

  test("braces in ids are escaped and measured as shown", () => {
    const line = renderStatusLine({ ...PUSHED, nodeId: "{n}" }, null, 80);
    expect(line).toContain("connected to {open}n{close} 127.0.0.1:5379");
  });
});
