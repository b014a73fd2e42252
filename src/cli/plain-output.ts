// Imported before citty, which decides once at load whether to colour its
// help: a help text written to a pipe or a file gets no ANSI escape codes.
// NO_COLOR or FORCE_COLOR set by the user wins.

if (!process.stdout.isTTY && process.env.NO_COLOR === undefined && process.env.FORCE_COLOR === undefined) {
  process.env.NO_COLOR = "1";
}
