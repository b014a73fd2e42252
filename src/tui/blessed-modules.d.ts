// Types for the blessed 0.1.81 files that src/tui/blessed.ts imports directly.
// @types/blessed describes only the package index, so these reuse its widget types.

declare module "blessed/lib/widgets/screen.js" {
  import type { Widgets } from "blessed";
  const screen: (options?: Widgets.IScreenOptions) => Widgets.Screen;
  export default screen;
}

declare module "blessed/lib/widgets/box.js" {
  import type { Widgets } from "blessed";
  const box: (options?: Widgets.BoxOptions) => Widgets.BoxElement;
  export default box;
}

declare module "blessed/lib/widgets/log.js" {
  import type { Widgets } from "blessed";
  const log: (options?: Widgets.LogOptions) => Widgets.Log;
  export default log;
}

declare module "blessed/lib/tput.js" {
  /** The members of blessed's Tput that the console replaces or reads. */
  interface TputPrototype {
    parseTerminfo(this: TputInstance, data: Buffer, file: string): unknown;
    injectTerminfo(this: TputInstance, file?: string): void;
    _useXtermInfo(this: TputInstance): void;
    _useInternalInfo(this: TputInstance, name: string): void;
  }
  type TputInstance = TputPrototype;
  const Tput: { prototype: TputPrototype };
  export default Tput;
}

// Terminfo entries shipped in the blessed package, imported with `{ type: "file" }`,
// which yields a path that `bun build --compile` embeds in the executable.
declare module "blessed/usr/*" {
  const path: string;
  export default path;
}
