// The blessed screen of `echokv tui`: members table, event pane, results pane
// and command line, redrawn from a ClusterMonitor.

import type { Widgets } from "blessed";
import { formatReply } from "../client/client.ts";
import { splitCommandLine } from "../protocol/resp.ts";
import { box, createScreen, log } from "./blessed.ts";
import { complete } from "./completion.ts";
import type { ClusterEvent } from "./events.ts";
import { LineEditor } from "./line-editor.ts";
import { escapeTags, memberRows, renderMembersTable } from "./members-table.ts";
import type { ClusterMonitor } from "./monitor.ts";
import { renderStatusLine } from "./status-line.ts";

/** Commands that would turn the command connection into a push stream, so its replies could no longer be matched. */
const REJECTED_COMMANDS = new Set(["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR"]);

/** Lines kept in the event and results panes. */
const PANE_SCROLLBACK = 2000;

const HELP_LINES = [
  "{bold}Command line{/bold}",
  "  Enter          run the line on the connected node",
  "  Up / Down      previous / next line from the history",
  "  Tab            complete a command, INFO section or member id",
  "  Left / Right, Home / End, Ctrl+A / Ctrl+E   move the cursor",
  "  Ctrl+U / Ctrl+K / Ctrl+W   delete to start / to end / a word",
  "  PgUp / PgDn    scroll the results pane",
  "  Esc            leave the line to scroll the panes: Tab picks",
  "                 events, results or members. Arrows and",
  "                 PgUp / PgDn scroll. Esc or Enter returns",
  "  ? or q         help or quit, typed on an empty line",
  "  Ctrl+C         quit. The command 'clear' empties results",
  "{bold}Members{/bold}  * marks the leader. LAST LOG: index/term of the",
  "  last entry. LAG: entries behind the leader's log, as the leader",
  "  reports it. CONTACT: time since the console's last reply from",
  "  the member. HEALTH: whether it replied to the latest INFO poll.",
  "  A down member's row keeps what it last reported, role in ( ).",
  "",
  "Arrows and PgUp / PgDn scroll this help; other keys close it.",
];

/** Width of the help box in columns, or of the screen when that is narrower. */
const HELP_WIDTH = 70;

/** Colors of event lines by type. Other types use the default color. */
const EVENT_COLORS: Record<string, string> = {
  leader_changed: "green-fg",
  role_changed: "cyan-fg",
  membership_changed: "magenta-fg",
  peer_unreachable: "red-fg",
  peer_reachable: "green-fg",
  node_started: "blue-fg",
  node_stopping: "yellow-fg",
  snapshot_taken: "white-fg",
  snapshot_installed: "white-fg",
  connection: "yellow-fg",
};

/** Key data that blessed passes to keypress handlers. */
interface KeyEvent {
  name?: string;
  full: string;
  ctrl: boolean;
  meta: boolean;
}

type Mode = "command" | "scroll";

/** Panes that scroll mode moves through with Tab, in this order. */
const SCROLL_PANES = ["events", "results", "members"] as const;
type ScrollPane = (typeof SCROLL_PANES)[number];

function formatEvent(event: ClusterEvent): string {
  const time = event.time.toTimeString().slice(0, 8);
  const term = event.term === null ? "" : ` t${event.term}`;
  const text = `${time} ${escapeTags(event.node)}${term} ${escapeTags(event.message)}`;
  const color = EVENT_COLORS[event.type];
  return color === undefined ? text : `{${color}}${text}{/${color}}`;
}

/** Whether `ch` is one printable character that the command line should insert. */
function isPrintable(ch: string | undefined, key: KeyEvent): ch is string {
  if (ch === undefined || ch.length !== 1 || key.ctrl || key.meta) return false;
  const code = ch.charCodeAt(0);
  return code >= 0x20 && code !== 0x7f;
}

export class TuiConsole {
  readonly #monitor: ClusterMonitor;
  readonly #screen: Widgets.Screen;
  readonly #status: Widgets.BoxElement;
  readonly #members: Widgets.BoxElement;
  readonly #events: Widgets.Log;
  readonly #results: Widgets.Log;
  readonly #commandLine: Widgets.BoxElement;
  readonly #help: Widgets.BoxElement;
  readonly #editor = new LineEditor();
  #mode: Mode = "command";
  #scrollPane: ScrollPane = "events";
  /**
   * First row of the members table shown under its header. The console
   * scrolls the table itself, so that the header stays in view.
   */
  #membersOffset = 0;
  /** Value of monitor.eventsRecorded when the event pane was last brought up to date. */
  #eventsShown = 0;
  /** Commands run one after another, so each reply is printed under its command. */
  #commandQueue: Promise<void> = Promise.resolve();
  #clock: ReturnType<typeof setInterval> | null = null;
  #finish: (() => void) | null = null;

  constructor(monitor: ClusterMonitor) {
    this.#monitor = monitor;
    this.#screen = createScreen({ smartCSR: true, autoPadding: true, warnings: false, title: "echokv tui" });
    const screen = this.#screen;

    this.#status = box({ parent: screen, top: 0, left: 0, width: "100%", height: 1, tags: true, style: { inverse: true } });
    this.#members = box({
      parent: screen,
      top: 1,
      left: 0,
      width: "100%",
      height: 6,
      border: "line",
      label: " Members ",
      tags: true,
      wrap: false,
    });
    // Each pane gets its own style objects, because blessed keeps them and the border color changes per pane.
    const paneOptions = () => ({
      parent: screen,
      top: 7,
      bottom: 3,
      border: "line" as const,
      tags: true,
      scrollable: true,
      alwaysScroll: true,
      scrollback: PANE_SCROLLBACK,
      scrollbar: { ch: " ", style: { inverse: true } },
      style: { border: {} as { fg?: string } },
    });
    this.#events = log({ ...paneOptions(), left: 0, width: "55%", label: " Events " });
    this.#results = log({ ...paneOptions(), left: "55%", right: 0, label: " Results " });
    this.#commandLine = box({ parent: screen, bottom: 0, left: 0, width: "100%", height: 3, border: "line", tags: true, wrap: false });
    this.#help = box({
      parent: screen,
      top: "center",
      left: "center",
      width: HELP_WIDTH,
      height: HELP_LINES.length + 2,
      border: "line",
      label: " Help ",
      tags: true,
      hidden: true,
      scrollable: true,
      alwaysScroll: true,
      content: HELP_LINES.join("\n"),
    });

    screen.on("keypress", (ch: string | undefined, key: KeyEvent) => this.#onKey(ch, key));
    screen.on("resize", () => this.#render());
    monitor.onChange(() => this.#render());
  }

  /** Shows the console and resolves when the user quits. */
  run(): Promise<void> {
    return new Promise((resolve) => {
      this.#finish = resolve;
      // Redraws the CONTACT ages even while nothing else changes.
      this.#clock = setInterval(() => this.#render(), 1000);
      this.#render();
    });
  }

  #quit(): void {
    const finish = this.#finish;
    if (finish === null) return;
    this.#finish = null;
    if (this.#clock !== null) clearInterval(this.#clock);
    this.#monitor.stop();
    this.#screen.destroy();
    finish();
  }

  // -------------------------------------------------------------------------
  // Drawing

  #render(): void {
    if (this.#finish === null) return;
    this.#renderStatus();
    this.#renderMembers();
    this.#appendEvents();
    this.#renderCommandLine();
    this.#help.width = Math.min(HELP_WIDTH, Number(this.#screen.width));
    this.#help.height = Math.min(HELP_LINES.length + 2, Number(this.#screen.height));
    this.#screen.render();
  }

  #renderStatus(): void {
    this.#status.setContent(renderStatusLine(this.#monitor.connection, this.#monitor.leader, Number(this.#screen.width)));
  }

  #renderMembers(): void {
    const screenHeight = Number(this.#screen.height);
    const width = Number(this.#screen.width) - 2;
    const leader = this.#monitor.leader;
    const [header, ...rows] = renderMembersTable(memberRows(this.#monitor.members, leader?.id ?? null, Date.now()), width);

    // The table takes what it needs but leaves 8 rows to the event and results panes. Scroll mode scrolls the rest.
    const maxHeight = Math.max(4, screenHeight - 1 - 3 - 8);
    const height = Math.min(rows.length + 3, maxHeight);
    const resized = height !== Number(this.#members.height);
    this.#members.height = height;
    const visibleRows = height - 3;
    this.#membersOffset = Math.max(0, Math.min(this.#membersOffset, rows.length - visibleRows));
    this.#members.setContent([header, ...rows.slice(this.#membersOffset, this.#membersOffset + visibleRows)].join("\n"));
    this.#events.top = 1 + height;
    this.#results.top = 1 + height;
    // A taller table shortens the panes below it, which would hide their
    // newest lines. A pane that the operator is scrolling stays where it is.
    if (!resized) return;
    for (const name of ["events", "results"] as const) {
      if (this.#mode !== "scroll" || this.#scrollPane !== name) this.#pane(name).setScrollPerc(100);
    }
  }

  #appendEvents(): void {
    const recorded = this.#monitor.eventsRecorded;
    const events = this.#monitor.events;
    const unseen = Math.min(recorded - this.#eventsShown, events.length);
    for (const event of events.slice(events.length - unseen)) this.#events.log(formatEvent(event));
    this.#eventsShown = recorded;
  }

  #renderCommandLine(): void {
    const text = this.#editor.text;
    const cursor = this.#editor.cursor;
    // Inner width minus the prompt and one cell for the cursor at the end of the line.
    const room = Math.max(1, Number(this.#commandLine.width) - 2 - 2 - 1);
    const start = Math.max(0, cursor - room);
    const visible = text.slice(start, start + room + 1);
    const at = cursor - start;
    const before = escapeTags(visible.slice(0, at));
    const under = escapeTags(visible[at] ?? " ");
    const after = escapeTags(visible.slice(at + 1));
    const cursorCell = this.#mode === "command" ? `{inverse}${under}{/inverse}` : under;
    this.#commandLine.setContent(`> ${before}${cursorCell}${after}`);

    const labels =
      this.#mode === "command"
        ? [" Command: Enter runs, Tab completes, ? help, q quits ", " Command: Enter, Tab, ? help, q quits "]
        : [" Scrolling: Tab switches pane, arrows scroll, Esc returns ", " Scrolling: Tab pane, arrows, Esc back "];
    // The label sits on the top border between its corners and a line each side.
    const fits = labels[0].length + 4 <= Number(this.#screen.width);
    this.#commandLine.setLabel(fits ? labels[0] : labels[1]);
    for (const name of SCROLL_PANES) this.#setBorderHighlight(this.#pane(name), this.#mode === "scroll" && this.#scrollPane === name);
  }

  #pane(name: ScrollPane): Widgets.BoxElement {
    switch (name) {
      case "events":
        return this.#events;
      case "results":
        return this.#results;
      case "members":
        return this.#members;
      default: {
        const unexpected: never = name;
        throw new Error(`unknown pane ${String(unexpected)}`);
      }
    }
  }

  #setBorderHighlight(pane: Widgets.BoxElement, highlighted: boolean): void {
    const style = pane.style as { border?: { fg?: string } };
    style.border = { ...style.border, fg: highlighted ? "yellow" : undefined };
  }

  // -------------------------------------------------------------------------
  // Keys

  #onKey(ch: string | undefined, key: KeyEvent): void {
    if (key.full === "C-c") {
      this.#quit();
      return;
    }
    // blessed reports Enter twice, as "enter" and as "return", so only "enter" is handled.
    if (key.name === "return") return;
    if (!this.#help.hidden) {
      if (this.#scrollHelp(key)) {
        this.#screen.render();
        return;
      }
      this.#help.hide();
      // A key typed to close the help also goes to the command line, so
      // typing right away loses nothing. Escape, Enter, ? and q only close it.
      if (!isPrintable(ch, key) || ch === "?" || ch === "q") {
        this.#render();
        return;
      }
    }
    if (this.#mode === "command") this.#onCommandKey(ch, key);
    else this.#onScrollKey(ch, key);
    this.#render();
  }

  #onCommandKey(ch: string | undefined, key: KeyEvent): void {
    const editor = this.#editor;
    switch (key.full) {
      case "enter":
      case "linefeed":
        this.#submit();
        return;
      case "up":
        editor.historyPrevious();
        return;
      case "down":
        editor.historyNext();
        return;
      case "left":
      case "C-b":
        editor.moveLeft();
        return;
      case "right":
      case "C-f":
        editor.moveRight();
        return;
      case "home":
      case "C-a":
        editor.moveToStart();
        return;
      case "end":
      case "C-e":
        editor.moveToEnd();
        return;
      case "backspace":
        editor.deleteBackward();
        return;
      case "delete":
      case "C-d":
        editor.deleteForward();
        return;
      case "C-u":
        editor.deleteToStart();
        return;
      case "C-k":
        editor.deleteToEnd();
        return;
      case "C-w":
        editor.deleteWordBackward();
        return;
      case "tab":
        this.#complete();
        return;
      case "pageup":
        this.#results.scroll(-this.#pageLines("results"));
        return;
      case "pagedown":
        this.#results.scroll(this.#pageLines("results"));
        return;
      case "escape":
        this.#mode = "scroll";
        return;
    }
    if (!isPrintable(ch, key)) return;
    if (editor.text === "" && ch === "q") {
      this.#quit();
      return;
    }
    if (editor.text === "" && ch === "?") {
      this.#showHelp();
      return;
    }
    editor.insert(ch);
  }

  /** Shows the help from its first line. */
  #showHelp(): void {
    this.#help.setScrollPerc(0);
    this.#help.show();
  }

  /** Scrolls the open help for an arrow or page key, which a help taller than the screen needs. Returns whether the key was one. */
  #scrollHelp(key: KeyEvent): boolean {
    const page = Math.max(1, Number(this.#help.height) - 2);
    const steps: Record<string, number> = { up: -1, down: 1, pageup: -page, pagedown: page };
    const step = steps[key.full];
    if (step === undefined) return false;
    this.#help.scroll(step);
    return true;
  }

  #onScrollKey(ch: string | undefined, key: KeyEvent): void {
    switch (key.full) {
      case "escape":
      case "enter":
      case "linefeed":
      case "i":
        this.#mode = "command";
        return;
      case "q":
        this.#quit();
        return;
      case "?":
        this.#showHelp();
        return;
      case "tab":
      case "S-tab": {
        const step = key.full === "tab" ? 1 : SCROLL_PANES.length - 1;
        this.#scrollPane = SCROLL_PANES[(SCROLL_PANES.indexOf(this.#scrollPane) + step) % SCROLL_PANES.length];
        return;
      }
      case "up":
      case "k":
        this.#scrollBy(-1);
        return;
      case "down":
      case "j":
        this.#scrollBy(1);
        return;
      case "pageup":
        this.#scrollBy(-this.#pageLines(this.#scrollPane));
        return;
      case "pagedown":
        this.#scrollBy(this.#pageLines(this.#scrollPane));
        return;
      case "home":
      case "g":
        this.#scrollBy(-Infinity);
        return;
      case "end":
      case "S-g":
        this.#scrollBy(Infinity);
        return;
    }
    // Typing anything else goes back to the command line with that character.
    if (isPrintable(ch, key)) {
      this.#mode = "command";
      this.#editor.insert(ch);
    }
  }

  /** Returns the lines that a page key scrolls in pane `name`: its height less the borders and one line of overlap. */
  #pageLines(name: ScrollPane): number {
    // The members table also keeps its header in view.
    const fixedLines = name === "members" ? 4 : 3;
    return Math.max(1, Number(this.#pane(name).height) - fixedLines);
  }

  /** Scrolls the pane being scrolled by `lines`, or to its top or bottom for an infinite count. */
  #scrollBy(lines: number): void {
    if (this.#scrollPane === "members") {
      // #renderMembers, which runs after every key, clamps the offset to the rows there are.
      this.#membersOffset = Math.max(0, this.#membersOffset + lines);
      return;
    }
    const pane = this.#pane(this.#scrollPane);
    if (Number.isFinite(lines)) pane.scroll(lines);
    else pane.setScrollPerc(lines > 0 ? 100 : 0);
  }

  #complete(): void {
    const editor = this.#editor;
    const memberIds = this.#monitor.members.map((member) => member.id);
    const completion = complete(editor.text, editor.cursor, { memberIds });
    editor.setText(completion.line, completion.cursor);
    if (completion.candidates.length > 1) this.#results.log(`{cyan-fg}${escapeTags(completion.candidates.join("  "))}{/cyan-fg}`);
  }

  // -------------------------------------------------------------------------
  // Commands

  #submit(): void {
    const line = this.#editor.submit();
    if (line.trim() === "") return;
    this.#commandQueue = this.#commandQueue.then(() => this.#run(line));
  }

  #printError(message: string): void {
    this.#results.log(`{red-fg}${escapeTags(message)}{/red-fg}`);
  }

  async #run(line: string): Promise<void> {
    this.#results.log(`{bold}> ${escapeTags(line)}{/bold}`);
    const args = splitCommandLine(line);
    if (args === null) {
      this.#printError("invalid command line: unbalanced quotes");
      this.#render();
      return;
    }

    const name = args[0].toString("utf8").toUpperCase();
    if (name === "QUIT" || name === "EXIT") {
      this.#quit();
      return;
    }
    if (name === "CLEAR" && args.length === 1) {
      this.#results.setContent("");
      this.#render();
      return;
    }
    if (REJECTED_COMMANDS.has(name)) {
      this.#printError(`${name} is not available here, because it would turn the command connection into a stream. The event pane shows cluster events.`);
      this.#render();
      return;
    }

    try {
      const reply = await this.#monitor.execute(args);
      if (reply.type === "error") this.#printError(`(error) ${reply.message}`);
      else this.#results.log(escapeTags(formatReply(reply)));
    } catch (err) {
      this.#printError(err instanceof Error ? err.message : String(err));
    }
    this.#render();
  }
}
