// Types of roomcast.js (PROTOCOL.md section 8).
// SPDX-License-Identifier: MIT

export type State = "connecting" | "connected" | "disconnected" | "closed";

export interface ClientOptions {
  /** A JWT, or a function giving one: called for each connect and before
   * the token's `exp` (then sent as a `refresh`). */
  token: string | (() => string | Promise<string>);
  /** WebSocket constructor (Node.js 18-20: pass the `ws` package's). */
  WebSocket?: { new (url: string, protocols?: string | string[]): any };
  /** Reconnect backoff with full jitter: random(0, min(max, min * 2^attempt)). */
  minDelayMs?: number; // 250
  maxDelayMs?: number; // 20000
  /** A request without a reply after this rejects with code "timeout". */
  requestTimeoutMs?: number; // 10000
  /** Upgrade + auth + welcome must take less than this. */
  connectTimeoutMs?: number; // 10000
  /** Refresh this long before exp (at most a third of the token's life left). */
  refreshMarginMs?: number; // 30000
}

/** Server error codes (PROTOCOL.md section 2) and the client's own:
 * "disconnected" (the link dropped before the reply), "timeout", "closed",
 * "left", "unauthorized" (auth refused for good). */
export class RoomcastError extends Error {
  code: string;
  room?: string;
}

export interface MessageMeta {
  /** Absent for ephemeral messages. */
  seq?: number;
  room: string;
}

export interface JoinResult {
  seq: number;
  recovered?: boolean;
}

export class Room {
  readonly name: string;
  readonly client: Client;
  /** The last seq delivered to "message" handlers. */
  readonly lastSeq: number | undefined;
  readonly joined: boolean;
  on(ev: "message", fn: (data: unknown, meta: MessageMeta) => void): this;
  on(ev: "gap", fn: (gap: { from: number; to: number }) => void): this;
  off(ev: "message" | "gap", fn: (...args: any[]) => void): this;
  once(ev: "message", fn: (data: unknown, meta: MessageMeta) => void): this;
  once(ev: "gap", fn: (gap: { from: number; to: number }) => void): this;
  /** Resolves after the server's ok; since: deliver what followed that seq. */
  join(opts?: { since?: number }): Promise<JoinResult>;
  /** Resolves with the message's seq. */
  publish(data: unknown): Promise<number>;
  leave(): Promise<void>;
}

export class Client {
  constructor(urls: string | string[], opts: ClientOptions);
  readonly state: State;
  /** From the last welcome. */
  readonly session: string | undefined;
  readonly node: string | undefined;
  readonly heartbeatMs: number;
  on(ev: "state", fn: (s: State) => void): this;
  on(ev: "error", fn: (err: RoomcastError | Error) => void): this;
  off(ev: "state" | "error", fn: (...args: any[]) => void): this;
  once(ev: "state", fn: (s: State) => void): this;
  once(ev: "error", fn: (err: RoomcastError | Error) => void): this;
  /** One handle per room name. */
  room(name: string): Room;
  /** No reconnect after this. */
  close(): void;
}

/** The reconnect delay for an attempt (0-based): full jitter under the cap. */
export function backoffDelay(attempt: number, minDelayMs?: number, maxDelayMs?: number,
                             random?: () => number): number;
/** The `exp` claim (seconds) of a JWT, without checking it. */
export function jwtExp(token: string): number | undefined;

export default Client;
