// The console's top line: which member it reads from, the leader, and how events arrive.

import { escapeTags } from "./members-table.ts";
import type { ConnectionState } from "./monitor.ts";
import type { LeaderView } from "./synthesize.ts";

/**
 * Returns the status line as blessed markup that fits `width` columns where
 * possible: the full wording first, then shorter ones that keep the node ids
 * and the term, which matter most on a small screen.
 */
export function renderStatusLine(connection: ConnectionState | null, leader: LeaderView | null, width: number): string {
  if (connection === null) {
    const full = " not connected: no member accepts a connection, retrying";
    return `{red-fg}${full.length <= width ? full : " not connected, retrying"}{/red-fg}`;
  }
  const node = escapeTags(connection.nodeId);
  const addr = escapeTags(connection.addr);
  const leaderId = leader === null ? null : escapeTags(leader.id);
  const feed = connection.feed === "push" ? "pushed" : "polled";
  const variants = [
    [
      ` connected to ${node} ${addr}`,
      leader === null ? "no leader known" : `leader ${leaderId}, term ${leader.term}`,
      `events ${feed}`,
    ],
    [` on ${node} ${addr}`, leader === null ? "no leader" : `leader ${leaderId} term ${leader.term}`, feed],
    [` on ${node}`, leader === null ? "no leader" : `leader ${leaderId} term ${leader.term}`],
  ].map((parts) => parts.join(" | "));
  // Escaped braces take more characters than they show, so measure the text as shown.
  return variants.find((line) => shownLength(line) <= width) ?? variants[variants.length - 1];
}

function shownLength(markup: string): number {
  return markup.replace(/\{open\}|\{close\}/g, "_").length;
}
