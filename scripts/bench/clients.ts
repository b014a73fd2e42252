// Benchmark clients: RESP for EchoKV and Redis, etcd's v3 HTTP/JSON gateway
// for etcd. Each client owns one connection with one request in flight and
// reports every request as "ok" or as a short error kind for the error count.

import { SingleRequestConnection } from "./connection.ts";

/** "ok", or a short description of what went wrong, such as `NOTLEADER`, `timeout` or `HTTP 503`. */
export type Outcome = string;

export type ReadConsistency = "local" | "linearizable";

/** One connection of the load generator to one server. */
export interface BenchClient {
  set(key: string, value: string): Promise<Outcome>;
  get(key: string, consistency: ReadConsistency): Promise<Outcome>;
  readonly closed: boolean;
  close(): void;
}

const CR = 13;
const LF = 10;

/** Returns the index of the first CRLF at or after `from`, or -1. */
function indexOfCrlf(buffer: Uint8Array, from: number): number {
  for (let i = from; i + 1 < buffer.length; i++) {
    if (buffer[i] === CR && buffer[i + 1] === LF) return i;
  }
  return -1;
}

function readAscii(buffer: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...buffer.subarray(start, end));
}

/** Returns the length of the first complete RESP2 simple string, error, integer or bulk string reply, or 0. */
function respReplyLength(buffer: Uint8Array): number {
  const lineEnd = indexOfCrlf(buffer, 0);
  if (lineEnd < 0) return 0;
  if (buffer[0] !== "$".charCodeAt(0)) return lineEnd + 2;
  const bulkLength = Number(readAscii(buffer, 1, lineEnd));
  if (bulkLength < 0) return lineEnd + 2;
  const total = lineEnd + 2 + bulkLength + 2;
  return buffer.length >= total ? total : 0;
}

/** Encodes a command as a RESP array of bulk strings. The arguments must be ASCII. */
function encodeRespCommand(args: string[]): string {
  let text = `*${args.length}\r\n`;
  for (const arg of args) text += `$${arg.length}\r\n${arg}\r\n`;
  return text;
}

/** RESP client for EchoKV and Redis, with GETs checked to return a value of the written size. */
export class RespClient implements BenchClient {
  #connection: SingleRequestConnection;
  #timeoutMs: number;
  /** First line of a GET reply that returns a value of the written size, such as `$256`. */
  #expectedGetHeader: string;
  /** Extra GET argument per consistency, or null where the server has no such read. */
  #getSuffix: Record<ReadConsistency, string | null>;

  private constructor(connection: SingleRequestConnection, timeoutMs: number, expectedValueBytes: number, getSuffix: Record<ReadConsistency, string | null>) {
    this.#connection = connection;
    this.#timeoutMs = timeoutMs;
    this.#expectedGetHeader = `$${expectedValueBytes}`;
    this.#getSuffix = getSuffix;
  }

  /**
   * Connects to a RESP server. `getSuffix` is appended to GET for each
   * consistency, because EchoKV takes `GET key linearizable` and Redis has only `GET key`.
   */
  static async open(
    port: number,
    timeoutMs: number,
    expectedValueBytes: number,
    getSuffix: Record<ReadConsistency, string | null>,
  ): Promise<RespClient> {
    const connection = await SingleRequestConnection.open(port, respReplyLength, timeoutMs);
    return new RespClient(connection, timeoutMs, expectedValueBytes, getSuffix);
  }

  get closed(): boolean {
    return this.#connection.closed;
  }

  async set(key: string, value: string): Promise<Outcome> {
    const exchange = await this.#connection.request(encodeRespCommand(["SET", key, value]), this.#timeoutMs, (reply) =>
      classifyRespReply(reply, "+OK"),
    );
    return "failure" in exchange ? exchange.failure : exchange.result;
  }

  async get(key: string, consistency: ReadConsistency): Promise<Outcome> {
    const suffix = this.#getSuffix[consistency];
    if (suffix === null) return "unsupported";
    const args = suffix === "" ? ["GET", key] : ["GET", key, suffix];
    const exchange = await this.#connection.request(encodeRespCommand(args), this.#timeoutMs, (reply) =>
      classifyRespReply(reply, this.#expectedGetHeader),
    );
    return "failure" in exchange ? exchange.failure : exchange.result;
  }

  close(): void {
    this.#connection.close();
  }
}

/**
 * Returns "ok" when the reply's first line is `expectedLine`, "miss" for a nil
 * bulk string, the error code of an error reply, or "unexpected reply".
 */
function classifyRespReply(reply: Uint8Array, expectedLine: string): Outcome {
  const firstLine = readAscii(reply, 0, indexOfCrlf(reply, 0));
  if (firstLine === expectedLine) return "ok";
  if (firstLine === "$-1") return "miss";
  if (firstLine.startsWith("-")) return firstLine.slice(1).split(" ")[0] || "error";
  return "unexpected reply";
}

/**
 * Returns the length of the first complete HTTP/1.1 response, or 0. Handles a
 * Content-Length body and a chunked body without trailers.
 */
function httpResponseLength(buffer: Uint8Array): number {
  let headerEnd = -1;
  for (let i = 0; i + 3 < buffer.length; i++) {
    if (buffer[i] === CR && buffer[i + 1] === LF && buffer[i + 2] === CR && buffer[i + 3] === LF) {
      headerEnd = i + 4;
      break;
    }
  }
  if (headerEnd < 0) return 0;
  const head = readAscii(buffer, 0, headerEnd).toLowerCase();
  const contentLength = /\r\ncontent-length:\s*(\d+)/.exec(head);
  if (contentLength) {
    const total = headerEnd + Number(contentLength[1]);
    return buffer.length >= total ? total : 0;
  }
  if (!/\r\ntransfer-encoding:\s*chunked/.test(head)) return headerEnd;
  let position = headerEnd;
  for (;;) {
    const sizeEnd = indexOfCrlf(buffer, position);
    if (sizeEnd < 0) return 0;
    const size = Number.parseInt(readAscii(buffer, position, sizeEnd), 16);
    position = sizeEnd + 2 + size + 2;
    if (position > buffer.length) return 0;
    if (size === 0) return position;
  }
}

/** Returns the status code and body of a complete HTTP response, joining chunks of a chunked body. */
function parseHttpResponse(response: Uint8Array): { status: number; body: string } {
  let headerEnd = 0;
  while (!(response[headerEnd] === CR && response[headerEnd + 1] === LF && response[headerEnd + 2] === CR && response[headerEnd + 3] === LF)) {
    headerEnd++;
  }
  const head = readAscii(response, 0, headerEnd);
  const status = Number(head.slice(9, 12));
  const decoder = new TextDecoder();
  if (!/\r\ntransfer-encoding:\s*chunked/i.test(head)) return { status, body: decoder.decode(response.subarray(headerEnd + 4)) };
  let body = "";
  let position = headerEnd + 4;
  for (;;) {
    const sizeEnd = indexOfCrlf(response, position);
    const size = Number.parseInt(readAscii(response, position, sizeEnd), 16);
    if (size === 0) return { status, body };
    body += decoder.decode(response.subarray(sizeEnd + 2, sizeEnd + 2 + size));
    position = sizeEnd + 2 + size + 2;
  }
}

/** Returns the JSON body of an HTTP 200 response, or an error kind such as `HTTP 503`. */
function parseEtcdReply(reply: Uint8Array): Record<string, unknown> | Outcome {
  const response = parseHttpResponse(reply);
  if (response.status !== 200) return `HTTP ${response.status}`;
  try {
    return JSON.parse(response.body) as Record<string, unknown>;
  } catch {
    return "invalid JSON reply";
  }
}

/**
 * etcd v3 client over the JSON gateway that etcd serves on its client port
 * (`POST /v3/kv/put`, `POST /v3/kv/range`, keys and values in base64), on one
 * keep-alive HTTP/1.1 connection. Debian's etcd-server package ships no gRPC
 * client for JavaScript, so a Bun client uses the gateway. The gateway adds
 * JSON and base64 work on both sides that gRPC would not.
 */
export class EtcdHttpClient implements BenchClient {
  #connection: SingleRequestConnection;
  #port: number;
  #timeoutMs: number;
  #expectedValueBase64Length: number;

  private constructor(connection: SingleRequestConnection, port: number, timeoutMs: number, expectedValueBytes: number) {
    this.#connection = connection;
    this.#port = port;
    this.#timeoutMs = timeoutMs;
    this.#expectedValueBase64Length = Math.ceil(expectedValueBytes / 3) * 4;
  }

  static async open(port: number, timeoutMs: number, expectedValueBytes: number): Promise<EtcdHttpClient> {
    const connection = await SingleRequestConnection.open(port, httpResponseLength, timeoutMs);
    return new EtcdHttpClient(connection, port, timeoutMs, expectedValueBytes);
  }

  get closed(): boolean {
    return this.#connection.closed;
  }

  async set(key: string, value: string): Promise<Outcome> {
    const body = `{"key":"${btoa(key)}","value":"${btoa(value)}"}`;
    const result = await this.#post("/v3/kv/put", body);
    if (typeof result === "string") return result;
    return result.header === undefined ? "unexpected reply" : "ok";
  }

  async get(key: string, consistency: ReadConsistency): Promise<Outcome> {
    // A range is linearizable unless `serializable` is set, which serves it from
    // the local member's store.
    const serializable = consistency === "local" ? `,"serializable":true` : "";
    const result = await this.#post("/v3/kv/range", `{"key":"${btoa(key)}"${serializable}}`);
    if (typeof result === "string") return result;
    const kvs = result.kvs as { value?: string }[] | undefined;
    if (!kvs || kvs.length === 0) return "miss";
    return kvs[0].value?.length === this.#expectedValueBase64Length ? "ok" : "unexpected reply";
  }

  close(): void {
    this.#connection.close();
  }

  /** Posts a JSON body and returns the parsed JSON reply, or an error kind such as `HTTP 503`. */
  async #post(path: string, body: string): Promise<Record<string, unknown> | Outcome> {
    const request =
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${this.#port}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const exchange = await this.#connection.request(request, this.#timeoutMs, parseEtcdReply);
    return "failure" in exchange ? exchange.failure : exchange.result;
  }
}

/**
 * Sends one command on a new connection and returns the reply's text: the
 * content of a bulk string, or the line of any other reply. For setup and
 * status checks, not for load.
 */
export async function sendRespCommand(port: number, args: string[], timeoutMs: number): Promise<string> {
  const connection = await SingleRequestConnection.open(port, respReplyLength, timeoutMs);
  try {
    const exchange = await connection.request(encodeRespCommand(args), timeoutMs, (reply) => new TextDecoder().decode(reply));
    if ("failure" in exchange) throw new Error(`${args[0]} on 127.0.0.1:${port} failed: ${exchange.failure}`);
    const text = exchange.result;
    const lineEnd = text.indexOf("\r\n");
    return text.startsWith("$") ? text.slice(lineEnd + 2, -2) : text.slice(0, lineEnd);
  } finally {
    connection.close();
  }
}
