/** Raised when a data directory cannot be used; the message gives the reason and the fix. */
export class StorageError extends Error {
  override name = "StorageError";
}
