// `echokv snapshot save FILE --connect HOST:PORT`: a consistent point-in-time
// backup of one node's state, restorable with `echokv serve --restore FILE`.

import { defineCommand } from "citty";
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { crc32 } from "node:zlib";
import { RespClient } from "../client/client.ts";
import type { RespValue } from "../protocol/resp.ts";
import { rejectUnknownFlags, UsageError } from "./flags.ts";

const READ_BYTES = 4 * 1024 * 1024;

const saveArgs = {
  file: { type: "positional", description: "Path of the backup file to write", required: true },
  connect: { type: "string", description: "Client address (host:port) of the node to back up", default: "127.0.0.1:5379" },
} as const;

function integers(reply: RespValue): number[] {
  if (reply.type === "error") throw new Error(reply.message);
  if (reply.type !== "array" || reply.value === null) throw new Error(`unexpected reply to SNAPSHOT: ${reply.type}`);
  return reply.value.map((item) => (item.type === "integer" ? item.value : Number.NaN));
}

/** Formats a size for progress lines: bytes, kB or MB, so that small snapshots do not read as 0.0 MB. */
function formatSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} bytes`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** Downloads the node's newest snapshot into `file`, verifying its CRC-32. Returns the snapshot index. */
export async function saveSnapshot(address: string, file: string, report: (line: string) => void): Promise<number> {
  const tmp = `${file}.partial`;
  // Opened before the node takes a snapshot, so a bad path fails at once and names the user's file.
  let fd: number | null = openBackupFile(file, tmp);
  let client: RespClient | null = null;
  try {
    client = await RespClient.connect(address, { timeoutMs: 10_000 });
    const [index, term, bytes, checksum] = integers(await client.command(["SNAPSHOT"], { timeoutMs: 600_000 }));
    report(`snapshot at index ${index} (term ${term}), ${formatSize(bytes)}`);
    let offset = 0;
    let lastPercent = -10;
    while (offset < bytes) {
      const reply = await client.command(["SNAPSHOT", "READ", String(index), String(offset), String(READ_BYTES)], { timeoutMs: 60_000 });
      if (reply.type === "error") throw new Error(reply.message);
      if (reply.type !== "bulk" || reply.value === null || reply.value.byteLength === 0) {
        throw new Error(`the node returned no data at offset ${offset} of ${bytes}`);
      }
      let written = 0;
      while (written < reply.value.byteLength) written += writeSync(fd, reply.value, written);
      offset += reply.value.byteLength;
      const percent = Math.floor((offset / bytes) * 100);
      if (percent >= lastPercent + 10 || offset === bytes) {
        lastPercent = percent;
        report(`saved ${percent}% (${formatSize(offset)} of ${formatSize(bytes)})`);
      }
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    // The file ends with the CRC-32 of everything before it, which the node reported.
    const saved = Buffer.from(await Bun.file(tmp).arrayBuffer());
    const computed = crc32(saved.subarray(0, saved.byteLength - 4)) >>> 0;
    if (computed !== checksum) {
      throw new Error(`checksum mismatch: the node reported ${checksum}, the saved file has ${computed}`);
    }
    renameSync(tmp, file);
    return index;
  } catch (err) {
    if (fd !== null) closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    client?.close();
  }
}

/** Creates the temporary file that becomes `file`, with an error that names `file` and the reason. */
function openBackupFile(file: string, tmp: string): number {
  if (existsSync(file) && statSync(file).isDirectory()) throw new Error(`cannot write the backup to ${file}: it is a directory`);
  try {
    return openSync(tmp, "w", 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const directory = dirname(resolve(file));
    let reason = err instanceof Error ? err.message : String(err);
    if (code === "ENOENT") reason = `directory ${directory} does not exist`;
    else if (code === "EACCES") reason = `permission denied in ${directory}`;
    throw new Error(`cannot write the backup to ${file}: ${reason}`);
  }
}

const saveCommand = defineCommand({
  meta: { name: "save", description: "Save a consistent point-in-time snapshot of a node to FILE" },
  args: saveArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags(rawArgs, saveArgs, "snapshot save");
    const address = args.connect.startsWith(":") ? `127.0.0.1${args.connect}` : args.connect;
    if (!args.file) throw new UsageError("missing FILE: echokv snapshot save FILE --connect HOST:PORT");
    const index = await saveSnapshot(address, args.file, (line) => process.stderr.write(`${line}\n`));
    process.stdout.write(`saved snapshot at index ${index} to ${args.file}\n`);
  },
});

export const snapshotCommand = defineCommand({
  meta: { name: "snapshot", description: "Back up a node: echokv snapshot save FILE --connect HOST:PORT" },
  subCommands: { save: saveCommand },
});
