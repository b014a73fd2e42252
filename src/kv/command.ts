// Binary encoding of state-machine commands stored in log entries:
//   byte 0: opcode; bytes 1-4: key length (big-endian u32); then key; then value.
// Keys and values are arbitrary bytes.

export type KvCommand =
  | { op: "set"; key: Uint8Array; value: Uint8Array }
  | { op: "del"; keys: Uint8Array[] };

const OP_SET = 1;
const OP_DEL = 2;

export function encodeCommand(command: KvCommand): Uint8Array {
  if (command.op === "set") {
    const out = new Uint8Array(5 + command.key.byteLength + command.value.byteLength);
    const view = new DataView(out.buffer);
    out[0] = OP_SET;
    view.setUint32(1, command.key.byteLength);
    out.set(command.key, 5);
    out.set(command.value, 5 + command.key.byteLength);
    return out;
  }
  let size = 1;
  for (const key of command.keys) size += 4 + key.byteLength;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = OP_DEL;
  let offset = 1;
  for (const key of command.keys) {
    view.setUint32(offset, key.byteLength);
    out.set(key, offset + 4);
    offset += 4 + key.byteLength;
  }
  return out;
}

/** Decodes a command; throws on bytes that no encoder produced (a corrupt log). */
export function decodeCommand(data: Uint8Array): KvCommand {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const readKey = (offset: number): [Uint8Array, number] => {
    if (offset + 4 > data.byteLength) throw new Error(`command truncated at byte ${offset}`);
    const length = view.getUint32(offset);
    const end = offset + 4 + length;
    if (end > data.byteLength) throw new Error(`command key of ${length} bytes overruns the entry`);
    return [data.subarray(offset + 4, end), end];
  };

  switch (data[0]) {
    case OP_SET: {
      const [key, end] = readKey(1);
      return { op: "set", key, value: data.subarray(end) };
    }
    case OP_DEL: {
      const keys: Uint8Array[] = [];
      let offset = 1;
      while (offset < data.byteLength) {
        const [key, end] = readKey(offset);
        keys.push(key);
        offset = end;
      }
      return { op: "del", keys };
    }
    default:
      throw new Error(`unknown command opcode ${data[0]}`);
  }
}
