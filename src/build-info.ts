// The binary's identity: its release version and the commit it was built from.

/** Set by `bun build --define` in scripts/build.ts, and undeclared when running from source. */
declare const ECHOKV_COMMIT: string | undefined;

export const VERSION = "0.1.0";

/**
 * The commit the binary was built from: 12 hex digits, with "-dirty" for
 * uncommitted changes, or "unknown" when running from source or built
 * outside a git checkout.
 */
export const BUILD_COMMIT: string = typeof ECHOKV_COMMIT === "string" ? ECHOKV_COMMIT : "unknown";
