// Builds dist/echokv, the single executable, with the commit it comes from.
//
//   bun scripts/build.ts
//
// The commit is the first 12 digits of HEAD's hash, with "-dirty" when
// tracked files have uncommitted changes, or "unknown" outside a git
// checkout. `echokv --version` and INFO server report it.

import { resolve } from "node:path";

const repoRoot = resolve(import.meta.dir, "..");

function describeCommit(): string {
  const head = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: repoRoot, stderr: "ignore" });
  const commit = head.exitCode === 0 ? head.stdout.toString().trim() : "";
  if (!/^[0-9a-f]{12}$/.test(commit)) return "unknown";
  // Exit status 1: tracked files differ from the commit.
  const diff = Bun.spawnSync(["git", "diff", "--quiet", "HEAD"], { cwd: repoRoot, stderr: "ignore" });
  return diff.exitCode === 1 ? `${commit}-dirty` : commit;
}

const commit = describeCommit();
const build = Bun.spawnSync(
  [
    process.execPath,
    "build",
    "--compile",
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    "--define",
    `ECHOKV_COMMIT=${JSON.stringify(commit)}`,
    "--outfile",
    "dist/echokv",
    "src/main.ts",
    "src/storage/log-writer-worker.ts",
  ],
  { cwd: repoRoot, stdout: "inherit", stderr: "inherit" },
);
if (build.exitCode !== 0) {
  console.error(`bun build failed with status ${build.exitCode}`);
  process.exit(build.exitCode ?? 1);
}
console.log(`built dist/echokv from commit ${commit}`);
