// The command line's text, cursor and history, independent of the terminal.

/** Number of history entries kept. The oldest are dropped beyond it. */
export const MAX_HISTORY = 500;

export class LineEditor {
  #text = "";
  /** Position of the cursor in #text, from 0 to #text.length. */
  #cursor = 0;
  readonly #history: string[] = [];
  /** Index into #history of the entry shown, or #history.length while editing a new line. */
  #historyIndex = 0;
  /** The new line being edited before the user moved into the history. */
  #draft = "";

  get text(): string {
    return this.#text;
  }

  get cursor(): number {
    return this.#cursor;
  }

  /** History entries, oldest first. */
  get history(): readonly string[] {
    return this.#history;
  }

  /** Replaces the text and moves the cursor, clamped to the text. */
  setText(text: string, cursor = text.length): void {
    this.#text = text;
    this.#cursor = Math.min(Math.max(0, cursor), text.length);
  }

  insert(text: string): void {
    this.setText(this.#text.slice(0, this.#cursor) + text + this.#text.slice(this.#cursor), this.#cursor + text.length);
  }

  /** Deletes the character before the cursor. */
  deleteBackward(): void {
    if (this.#cursor === 0) return;
    this.setText(this.#text.slice(0, this.#cursor - 1) + this.#text.slice(this.#cursor), this.#cursor - 1);
  }

  /** Deletes the character under the cursor. */
  deleteForward(): void {
    this.setText(this.#text.slice(0, this.#cursor) + this.#text.slice(this.#cursor + 1), this.#cursor);
  }

  /** Deletes the word before the cursor and the spaces after it, as Ctrl+W does in a shell. */
  deleteWordBackward(): void {
    const before = this.#text.slice(0, this.#cursor);
    const start = before.replace(/\S*\s*$/, "").length;
    this.setText(this.#text.slice(0, start) + this.#text.slice(this.#cursor), start);
  }

  deleteToStart(): void {
    this.setText(this.#text.slice(this.#cursor), 0);
  }

  deleteToEnd(): void {
    this.setText(this.#text.slice(0, this.#cursor), this.#cursor);
  }

  moveLeft(): void {
    this.#cursor = Math.max(0, this.#cursor - 1);
  }

  moveRight(): void {
    this.#cursor = Math.min(this.#text.length, this.#cursor + 1);
  }

  moveToStart(): void {
    this.#cursor = 0;
  }

  moveToEnd(): void {
    this.#cursor = this.#text.length;
  }

  /** Shows the previous history entry, keeping the line being edited as a draft. */
  historyPrevious(): void {
    if (this.#historyIndex === 0) return;
    if (this.#historyIndex === this.#history.length) this.#draft = this.#text;
    this.#historyIndex--;
    this.setText(this.#history[this.#historyIndex]);
  }

  /** Shows the next history entry, or the draft after the newest one. */
  historyNext(): void {
    if (this.#historyIndex === this.#history.length) return;
    this.#historyIndex++;
    this.setText(this.#historyIndex === this.#history.length ? this.#draft : this.#history[this.#historyIndex]);
  }

  /**
   * Returns the line and starts a new, empty one. A line that is not blank and
   * differs from the newest entry is added to the history.
   */
  submit(): string {
    const line = this.#text;
    if (line.trim() !== "" && this.#history.at(-1) !== line) {
      this.#history.push(line);
      if (this.#history.length > MAX_HISTORY) this.#history.splice(0, this.#history.length - MAX_HISTORY);
    }
    this.#historyIndex = this.#history.length;
    this.#draft = "";
    this.setText("");
    return line;
  }
}
