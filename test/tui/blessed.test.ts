import { afterAll, describe, expect, test } from "bun:test";
import Tput from "blessed/lib/tput.js";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installTerminfoFallback } from "../../src/tui/blessed.ts";

/** The fields of a constructed Tput that these tests read. */
interface TputState {
  terminal: string;
  error: Error | null;
  numbers: { max_colors?: number };
  strings: { enter_alt_charset_mode?: string };
}

const createTput = Tput as unknown as new (options: { terminal: string }) => TputState;
const root = mkdtempSync(join(tmpdir(), "echokv-terminfo-test-"));

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Writes a file that starts like an ncurses 6.1 entry with 32-bit numbers (magic 01036). */
function writeExtendedEntry(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  const header = Buffer.alloc(64);
  header.writeUInt16LE(0o1036, 0);
  writeFileSync(file, header);
  return file;
}

describe("installTerminfoFallback", () => {
  installTerminfoFallback();

  test("32-bit entry falls back to embedded copy", () => {
    const tput = new createTput({ terminal: writeExtendedEntry("xterm-256color") });
    expect(tput.error?.message).toBe("Terminfo parse error.");
    expect(tput.terminal).toBe("xterm-256color");
    expect(tput.numbers.max_colors).toBe(256);
    expect(tput.strings.enter_alt_charset_mode).toBe("\x1b(0");
  });

  test("unknown entry falls back to xterm", () => {
    const tput = new createTput({ terminal: writeExtendedEntry("tmux-256color") });
    expect(tput.error?.message).toBe("Terminfo not found.");
    expect(tput.terminal).toBe("xterm");
    expect(tput.numbers.max_colors).toBe(8);
  });

  test("second install is harmless", () => {
    installTerminfoFallback();
    const tput = new createTput({ terminal: writeExtendedEntry("xterm") });
    expect(tput.terminal).toBe("xterm");
    expect(tput.error?.message).toBe("Terminfo parse error.");
  });
});
