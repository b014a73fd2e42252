// Tab completion for the console's command line.

import { CONSISTENCY_LEVELS } from "../server/commands.ts";

/** Store commands that the command line completes. */
export const COMPLETED_COMMANDS = [
  "SET", "GET", "DEL", "EXISTS", "DBSIZE", "PING", "INFO", "MEMBERS", "LEADER", "REMOVE", "TRANSFER", "JOIN", "SNAPSHOT", "CONSISTENCY",
] as const;

/** Sections that `INFO <section>` accepts. */
export const INFO_SECTIONS = ["server", "raft", "members", "keyspace", "memory", "all"] as const;


export interface CompletionContext {
  /** Ids of the current members, offered after REMOVE. */
  memberIds: readonly string[];
}

export interface Completion {
  line: string;
  cursor: number;
  /** Every candidate matching the word, for display. Empty when nothing matched. */
  candidates: string[];
}

function commonPrefix(words: string[]): string {
  let prefix = words[0] ?? "";
  for (const word of words) {
    let length = 0;
    while (length < prefix.length && length < word.length && prefix[length] === word[length]) length++;
    prefix = prefix.slice(0, length);
  }
  return prefix;
}

/** Returns the candidates for the word at `index` of a command whose earlier words are `words`. */
function candidatesFor(words: string[], index: number, prefix: string, context: CompletionContext): string[] {
  if (index === 0) {
    // Commands are completed in the case the user started typing them in.
    const lower = prefix !== "" && prefix === prefix.toLowerCase();
    return COMPLETED_COMMANDS.filter((name) => name.startsWith(prefix.toUpperCase())).map((name) => (lower ? name.toLowerCase() : name));
  }
  const command = words[0]?.toUpperCase();
  if (index === 2 && command === "GET") return CONSISTENCY_LEVELS.filter((level) => level.startsWith(prefix.toLowerCase()));
  if (index !== 1) return [];
  switch (command) {
    case "REMOVE":
    case "TRANSFER":
      return context.memberIds.filter((id) => id.startsWith(prefix));
    case "INFO":
      return INFO_SECTIONS.filter((section) => section.startsWith(prefix.toLowerCase()));
    case "CONSISTENCY":
      return CONSISTENCY_LEVELS.filter((level) => level.startsWith(prefix.toLowerCase()));
    default:
      return [];
  }
}

/**
 * Completes the word that ends at `cursor`: a command name as the first word,
 * a member id after REMOVE and a section after INFO. A single match is
 * completed with a space after it, and several matches are extended to their
 * common prefix. Quoted words are left alone.
 */
export function complete(line: string, cursor: number, context: CompletionContext): Completion {
  const before = line.slice(0, cursor);
  const wordStart = Math.max(before.lastIndexOf(" "), before.lastIndexOf("\t")) + 1;
  const prefix = before.slice(wordStart);
  const unchanged: Completion = { line, cursor, candidates: [] };
  if (/["']/.test(before)) return unchanged;

  const words = before.slice(0, wordStart).split(/\s+/).filter((word) => word !== "");
  const candidates = candidatesFor(words, words.length, prefix, context);
  if (candidates.length === 0) return unchanged;

  const after = line.slice(cursor);
  let replacement = candidates.length === 1 ? candidates[0] : commonPrefix(candidates);
  if (candidates.length === 1 && !after.startsWith(" ")) replacement += " ";
  return {
    line: line.slice(0, wordStart) + replacement + after,
    cursor: wordStart + replacement.length,
    candidates,
  };
}
