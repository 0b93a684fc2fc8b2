/**
 * The boundary between the mesh and the wire. A Link is an ordered, message-framed pipe (a
 * WebSocket, or a simulated one); it reports events through callbacks rather than promises so the
 * whole mesh stays synchronous and runs unchanged under the simulated clock.
 */

import type { Diagnostic } from "./diagnostics.ts";

export interface Link {
  /** `host:port` of the other end as this side sees it. */
  readonly remoteAddress: string;
  /** Queues one frame; silently ignored once the link is closed. */
  send(frame: string): void;
  /** Closes the link; `onClose` fires once, later, with the reason. */
  close(reason?: string): void;
  /**
   * The mesh's handshake proved the other side: the transport moves the link from its small
   * budget for unauthenticated connections (tight size and time limits) to the connection limit,
   * or closes it when that is full.
   */
  markAuthenticated?(): void;
  /** Fires once when a dialled link is ready (accepted links are ready when handed over). */
  onOpen?: () => void;
  /** One frame as received; binary frames arrive as bytes so the mesh can refuse them. */
  onMessage?: (frame: string | Uint8Array) => void;
  onClose?: (reason: string) => void;
}

export interface Transport {
  /** Trouble on the wire a person should know about (a flood, descriptors running out). */
  diagnostics?(): Diagnostic[];
  /** Starts accepting links; resolves to the bound `host:port`. */
  listen(onAccept: (link: Link) => void): Promise<string>;
  /** Starts dialling; the link reports `onOpen` or `onClose` later. */
  dial(address: string): Link;
  /** Stops listening and closes every link this transport made or accepted. */
  close(): Promise<void>;
}
