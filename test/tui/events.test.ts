import { describe, expect, test } from "bun:test";
import { EventFormatError, parseEventPayload } from "../../src/tui/events.ts";

const RECEIVED_AT = new Date("2025-06-01T12:00:00.000Z");

describe("parseEventPayload", () => {
  test("reads a published event", () => {
    const payload = JSON.stringify({
      time: "2025-06-01T11:59:59.500Z",
      node: "node-1",
      term: 3,
      type: "leader_changed",
      message: "leader is now node-2",
      leader: "node-2",
    });
    expect(parseEventPayload(payload, RECEIVED_AT)).toEqual({
      time: new Date("2025-06-01T11:59:59.500Z"),
      node: "node-1",
      term: 3,
      type: "leader_changed",
      message: "leader is now node-2",
      source: "push",
    });
  });

  test("keeps unknown types", () => {
    const event = parseEventPayload(JSON.stringify({ node: "node-1", type: "snapshot_taken", message: "snapshot at 100" }), RECEIVED_AT);
    expect(event.type).toBe("snapshot_taken");
    expect(event.message).toBe("snapshot at 100");
  });

  test("bad time becomes receive time", () => {
    const event = parseEventPayload(JSON.stringify({ time: "yesterday", node: "node-1", type: "node_started" }), RECEIVED_AT);
    expect(event.time).toEqual(RECEIVED_AT);
  });

  test("missing message is made from type", () => {
    const event = parseEventPayload(JSON.stringify({ node: "node-1", type: "node_stopping" }), RECEIVED_AT);
    expect(event.message).toBe("node stopping");
  });

  test("non-integer term is unknown", () => {
    const event = parseEventPayload(JSON.stringify({ node: "node-1", type: "role_changed", term: "3" }), RECEIVED_AT);
    expect(event.term).toBeNull();
  });

  test("invalid JSON is rejected", () => {
    expect(() => parseEventPayload("{not json", RECEIVED_AT)).toThrow(EventFormatError);
  });

  test("array is rejected", () => {
    expect(() => parseEventPayload("[1,2]", RECEIVED_AT)).toThrow("cluster event is not a JSON object");
  });

  test("missing type is rejected", () => {
    expect(() => parseEventPayload(JSON.stringify({ node: "node-1" }), RECEIVED_AT)).toThrow("cluster event has no type");
  });

  test("missing node is rejected", () => {
    expect(() => parseEventPayload(JSON.stringify({ type: "role_changed" }), RECEIVED_AT)).toThrow("cluster event role_changed has no node");
  });
});
