// The parts of blessed 0.1.81 that the console uses, loaded so that
// `bun build --compile` can put all of them into dist/echokv.
//
// The package index cannot be bundled: lib/widget.js loads every widget with
// `require('./widgets/' + name)`, a path the bundler cannot follow, so the
// compiled binary failed at start with "Cannot find module './widgets/node'".
// The widget files themselves only use static requires, so importing them one
// by one bundles them and everything they need.
//
// Terminfo is the second runtime file dependency. Tput reads the entry for $TERM
// from the system database and, when that is missing or unreadable, falls back
// to files in node_modules/blessed/usr, which do not exist next to a compiled
// binary. `installTerminfoFallback` points that fallback at copies of those
// files embedded with `{ type: "file" }` imports.

import type { Widgets } from "blessed";
import box from "blessed/lib/widgets/box.js";
import log from "blessed/lib/widgets/log.js";
import screen from "blessed/lib/widgets/screen.js";
import Tput from "blessed/lib/tput.js";
import xtermTerminfo from "blessed/usr/xterm" with { type: "file" };
import xterm256Terminfo from "blessed/usr/xterm-256color" with { type: "file" };
import { basename } from "node:path";

export { box, log };

/** Terminfo entries embedded in the binary, by terminal name. */
const BUNDLED_TERMINFO: Record<string, string> = {
  xterm: xtermTerminfo,
  "xterm-256color": xterm256Terminfo,
};

/**
 * Magic number of the legacy terminfo format with 16-bit numbers, the only
 * format blessed 0.1.81 parses. ncurses 6.1 added the extended number format
 * (magic 01036, described in term(5)), which Debian 12 uses for xterm-256color
 * and which blessed misreads without noticing.
 */
const LEGACY_TERMINFO_MAGIC = 0o432;

let terminfoFallbackInstalled = false;

/**
 * Replaces blessed's terminfo fallbacks with the embedded entries, and makes
 * it reject entries in the 32-bit format instead of misparsing them. Blessed
 * then falls back to its own copy of the entry for $TERM, or to xterm.
 */
export function installTerminfoFallback(): void {
  if (terminfoFallbackInstalled) return;
  terminfoFallbackInstalled = true;

  const parseTerminfo = Tput.prototype.parseTerminfo;
  Tput.prototype.parseTerminfo = function (data, file) {
    const magic = data.readUInt16LE(0);
    if (magic !== LEGACY_TERMINFO_MAGIC) {
      // Misparsed entries make blessed print compile errors over the screen.
      throw new Error(`terminfo file ${file} has format ${magic.toString(8)}, which blessed cannot read`);
    }
    return parseTerminfo.call(this, data, file);
  };

  Tput.prototype._useInternalInfo = function (name) {
    const file = BUNDLED_TERMINFO[basename(name)];
    if (file === undefined) throw new Error(`no embedded terminfo entry for ${name}`);
    this.injectTerminfo(file);
  };

  Tput.prototype._useXtermInfo = function () {
    this.injectTerminfo(xtermTerminfo);
  };
}

/** The fields of blessed's Tput instance that `createScreen` adjusts, which @types/blessed does not declare. */
interface TerminalFeatures {
  /** Whether the locale is UTF-8, as blessed detected it from LANG, LANGUAGE, LC_ALL and LC_CTYPE. */
  unicode: boolean;
  /** Whether blessed draws lines with Unicode characters instead of the terminal's alternate character set (ACS). */
  brokenACS: boolean;
}

/**
 * Creates the blessed screen on the process's terminal.
 *
 * In a UTF-8 locale, box lines are drawn as Unicode characters, as ncurses does
 * with NCURSES_NO_UTF8_ACS=1, because ACS lines read back as the letters
 * `lqqk` from `tmux capture-pane`. Setting NCURSES_NO_UTF8_ACS to 0 keeps ACS.
 */
export function createScreen(options: Widgets.IScreenOptions): Widgets.Screen {
  installTerminfoFallback();
  // NOTE: fullUnicode must stay off. With it on, blessed measures tabs through
  // `require('../')`, the package index that the compiled binary cannot load.
  const created = screen({ ...options, fullUnicode: false });
  const features = (created as unknown as { tput: TerminalFeatures }).tput;
  if (features.unicode && process.env.NCURSES_NO_UTF8_ACS === undefined) features.brokenACS = true;
  return created;
}
