import { describe, expect, test } from "bun:test";
import { complete } from "../../src/tui/completion.ts";
import { LineEditor, MAX_HISTORY } from "../../src/tui/line-editor.ts";

const CONTEXT = { memberIds: ["node-1", "node-2", "other"] };

function completeAtEnd(line: string) {
  return complete(line, line.length, CONTEXT);
}

describe("complete", () => {
  test("unique command gets a space", () => {
    expect(completeAtEnd("MEM")).toEqual({ line: "MEMBERS ", cursor: 8, candidates: ["MEMBERS"] });
  });

  test("lowercase prefix stays lowercase", () => {
    expect(completeAtEnd("ex").line).toBe("exists ");
  });

  test("mixed case prefix becomes uppercase", () => {
    expect(completeAtEnd("Le").line).toBe("LEADER ");
  });

  test("several matches extend to common prefix", () => {
    const completion = completeAtEnd("d");
    expect(completion.line).toBe("d");
    expect(completion.candidates).toEqual(["del", "dbsize"]);
  });

  test("common prefix is filled in", () => {
    const completion = completeAtEnd("REMOVE n");
    expect(completion.line).toBe("REMOVE node-");
    expect(completion.cursor).toBe(12);
    expect(completion.candidates).toEqual(["node-1", "node-2"]);
  });

  test("empty line lists every command", () => {
    const completion = completeAtEnd("");
    expect(completion.line).toBe("");
    expect(completion.candidates).toEqual([
      "SET", "GET", "DEL", "EXISTS", "DBSIZE", "PING", "INFO", "MEMBERS", "LEADER", "REMOVE", "TRANSFER", "JOIN", "SNAPSHOT", "CONSISTENCY",
    ]);
  });

  test("member ids after REMOVE", () => {
    const completion = completeAtEnd("remove node-");
    expect(completion.line).toBe("remove node-");
    expect(completion.candidates).toEqual(["node-1", "node-2"]);
    expect(completeAtEnd("REMOVE o").line).toBe("REMOVE other ");
  });

  test("sections after INFO", () => {
    expect(completeAtEnd("INFO ra").line).toBe("INFO raft ");
    expect(completeAtEnd("INFO me").candidates).toEqual(["members", "memory"]);
  });

  test("admin commands and their arguments", () => {
    expect(completeAtEnd("TRA").line).toBe("TRANSFER ");
    expect(completeAtEnd("TRANSFER o").line).toBe("TRANSFER other ");
    expect(completeAtEnd("CONSISTENCY li").line).toBe("CONSISTENCY linearizable ");
    expect(completeAtEnd("snap").line).toBe("snapshot ");
  });

  test("levels after GET key", () => {
    expect(completeAtEnd("GET key le").line).toBe("GET key lease ");
    expect(completeAtEnd("GET key l").candidates).toEqual(["local", "lease", "linearizable"]);
  });

  test("keys are not completed", () => {
    expect(completeAtEnd("GET ke")).toEqual({ line: "GET ke", cursor: 6, candidates: [] });
  });

  test("unknown prefix leaves line", () => {
    expect(completeAtEnd("xyz")).toEqual({ line: "xyz", cursor: 3, candidates: [] });
  });

  test("quoted words are left alone", () => {
    expect(completeAtEnd('SET "a b" ').candidates).toEqual([]);
  });

  test("cursor inside the line", () => {
    const completion = complete("GE key", 2, CONTEXT);
    expect(completion.line).toBe("GET key");
    expect(completion.cursor).toBe(3);
  });
});

describe("LineEditor", () => {
  function typed(text: string): LineEditor {
    const editor = new LineEditor();
    editor.insert(text);
    return editor;
  }

  test("inserts at cursor", () => {
    const editor = typed("SET  v");
    editor.moveLeft();
    editor.moveLeft();
    editor.insert("k");
    expect(editor.text).toBe("SET k v");
    expect(editor.cursor).toBe(5);
  });

  test("deletes around cursor", () => {
    const editor = typed("abcd");
    editor.moveLeft();
    editor.deleteBackward();
    expect(editor.text).toBe("abd");
    editor.deleteForward();
    expect(editor.text).toBe("ab");
    editor.moveToStart();
    editor.deleteBackward();
    expect(editor.text).toBe("ab");
  });

  test("deletes previous word", () => {
    const editor = typed("SET key value  ");
    editor.deleteWordBackward();
    expect(editor.text).toBe("SET key ");
    editor.deleteWordBackward();
    expect(editor.text).toBe("SET ");
  });

  test("deletes to start and end", () => {
    const editor = typed("GET key");
    editor.moveToStart();
    editor.moveRight();
    editor.moveRight();
    editor.moveRight();
    editor.deleteToEnd();
    expect(editor.text).toBe("GET");
    editor.deleteToStart();
    expect(editor.text).toBe("");
  });

  test("cursor stays in bounds", () => {
    const editor = typed("ab");
    editor.moveRight();
    expect(editor.cursor).toBe(2);
    editor.moveToStart();
    editor.moveLeft();
    expect(editor.cursor).toBe(0);
  });

  test("history walks back and forward", () => {
    const editor = new LineEditor();
    for (const line of ["PING", "GET a", "GET b"]) {
      editor.insert(line);
      editor.submit();
    }
    editor.insert("draft");
    editor.historyPrevious();
    expect(editor.text).toBe("GET b");
    editor.historyPrevious();
    editor.historyPrevious();
    expect(editor.text).toBe("PING");
    editor.historyPrevious();
    expect(editor.text).toBe("PING");
    editor.historyNext();
    expect(editor.text).toBe("GET a");
    editor.historyNext();
    editor.historyNext();
    expect(editor.text).toBe("draft");
    expect(editor.cursor).toBe(5);
  });

  test("history skips blanks and repeats", () => {
    const editor = new LineEditor();
    for (const line of ["PING", "PING", "  ", "INFO", "PING"]) {
      editor.insert(line);
      expect(editor.submit()).toBe(line);
    }
    expect(editor.history).toEqual(["PING", "INFO", "PING"]);
    expect(editor.text).toBe("");
  });

  test("history keeps the newest entries", () => {
    const editor = new LineEditor();
    for (let i = 0; i < MAX_HISTORY + 5; i++) {
      editor.insert(`GET k${i}`);
      editor.submit();
    }
    expect(editor.history.length).toBe(MAX_HISTORY);
    expect(editor.history[0]).toBe("GET k5");
  });

  test("submit after history restarts at newest", () => {
    const editor = new LineEditor();
    for (const line of ["A", "B"]) {
      editor.insert(line);
      editor.submit();
    }
    editor.historyPrevious();
    editor.historyPrevious();
    editor.submit();
    editor.historyPrevious();
    expect(editor.text).toBe("A");
  });
});
