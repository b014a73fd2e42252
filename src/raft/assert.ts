/** Raised when a Raft invariant is broken: the node must stop rather than serve corrupt state. */
export class InvariantError extends Error {
  override name = "InvariantError";
}

export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}
