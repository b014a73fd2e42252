// Addresses of the worker thread entry points. This module sits next to
// main.ts on purpose: the compiled executable gives every bundled module the
// entry point's address, and keeps each worker (a build entry point of its
// own, listed in package.json) at its path under src/. From here the same
// relative path is right both from source and inside the executable.

export const LOG_WRITER_WORKER_URL = new URL("./storage/log-writer-worker.ts", import.meta.url).href;
