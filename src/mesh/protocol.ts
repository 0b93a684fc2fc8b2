/**
 * Every frame the mesh speaks, as one discriminated union, and the one place where untrusted text
 * becomes a frame. A frame that passes `decodeFrame` has exactly the fields its type promises
 * (rebuilt field by field, so unknown fields from a newer or hostile peer are not carried on);
 * Session and Mesh switch on `t` and never look at raw objects. Anything else is a
 * `MalformedFrameError`, which closes that one connection.
 */
import { MalformedFrameError } from "./errors.ts";
import { PUBLIC_KEY, SIGNATURE } from "./keys.ts";
import { parseRecord, PEER_NAME, type PeerRecord } from "./record.ts";
import type { SummaryEntry } from "./topology.ts";

/**
 * Protocol versions this build speaks, inclusive. 2: identity keys and signatures, ephemeral
 * key exchange, sealed frames. Version 1 is not spoken: accepting it would let anyone fall back
 * to unsigned, unsealed gossip.
 */
export const PROTOCOL_RANGE: readonly [number, number] = [2, 2];

export interface HelloFrame {
  t: "hello";
  proto: [number, number];
  nonce: string;
  /** Whether the sender has a password; a mismatch is refused before names are exchanged. */
  auth: boolean;
  /** The sender's ephemeral X25519 public key for this connection, base64. */
  dh: string;
}

export interface AuthFrame {
  t: "auth";
  name: string;
  nickname: string;
  incarnation: string;
  /** The port the sender listens on, so the other side can advertise a dialable address. */
  port: number;
  /** The sender's Ed25519 identity public key, base64. */
  key: string;
  /** Its signature over the handshake transcript: proof that it holds `key`. */
  sig: string;
  /** With a password: HMAC over the transcript, proof that it knows the password. */
  proof?: string;
}

/** Why the sender is closing; ends the connection. */
export interface ErrorFrame {
  t: "error";
  message: string;
  /** A stable reason the other side can act on, e.g. "key-mismatch", "name-collision". */
  code?: string;
}

/** Proof of life; "pong" is accepted from tools that send one and means the same. */
export interface PingFrame {
  t: "ping" | "pong";
}

/** Peer records, pushed along the broadcast tree or in answer to a summary. */
export interface GossipFrame {
  t: "gossip";
  r: PeerRecord[];
}

/** The sender's topology digest; a different one asks for a summary. */
export interface DigestFrame {
  t: "digest";
  h: string;
}

/** `(name, incarnation, version)` of every record the sender holds. */
export interface SummaryFrame {
  t: "summary";
  /** An answer to the other side's summary: not to be answered again. */
  reply: boolean;
  e: SummaryEntry[];
}

/**
 * A best-effort message to every peer, along the broadcast tree. `id` is `<incarnation>.<seq>`
 * of the originator, which signs it (`messageSigningBytes`): receivers drop copies and replays
 * by id and deliver only what the key bound to `src` signed.
 */
export interface BroadcastFrame {
  t: "bcast";
  src: string;
  id: string;
  ch: string;
  p: string;
  sig: string;
}

/** A best-effort message to one peer, forwarded hop by hop while `ttl` lasts; signed as above. */
export interface MessageFrame {
  t: "msg";
  src: string;
  dst: string;
  id: string;
  ch: string;
  p: string;
  ttl: number;
  sig: string;
}

/** What the originator of a message or broadcast signs (everything but the TTL). */
export function messageSigningBytes(
  frame: Pick<MessageFrame, "src" | "id" | "ch" | "p"> & { dst?: string },
): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify(["weft-msg-v1", frame.src, frame.dst ?? "", frame.id, frame.ch, frame.p]),
  );
}

export type Frame =
  | HelloFrame
  | AuthFrame
  | ErrorFrame
  | PingFrame
  | GossipFrame
  | DigestFrame
  | SummaryFrame
  | BroadcastFrame
  | MessageFrame;

const INCARNATION = /^[0-9a-f]{8,64}$/;
/** A message id: the originator's incarnation and a counter. */
export const MESSAGE_ID = /^([0-9a-f]{8,64})\.(\d{1,15})$/;
const MAX_CHANNEL = 256;
const MAX_ID = 90;
const MAX_RECORDS = 100_000;

function bad(what: string, value: unknown): never {
  const text = JSON.stringify(value) ?? String(value);
  throw new MalformedFrameError(`Invalid ${what} ${text.slice(0, 120)}`);
}

function isName(value: unknown): value is string {
  return typeof value === "string" && PEER_NAME.test(value);
}

function isId(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_ID && MESSAGE_ID.test(value);
}

function isSignature(value: unknown): value is string {
  return typeof value === "string" && SIGNATURE.test(value);
}

function isText(value: unknown, max: number): value is string {
  return typeof value === "string" && value.length <= max;
}

/** Parses one text frame; throws `MalformedFrameError` naming what is wrong. */
export function decodeFrame(text: string): Frame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MalformedFrameError(`Malformed frame: not JSON: ${text.slice(0, 60)}`);
  }
  if (
    typeof value !== "object" || value === null || Array.isArray(value) ||
    typeof (value as { t?: unknown }).t !== "string"
  ) {
    throw new MalformedFrameError(`Malformed frame: no type: ${text.slice(0, 60)}`);
  }
  return checkFrame(value as Record<string, unknown> & { t: string });
}

function checkFrame(v: Record<string, unknown> & { t: string }): Frame {
  switch (v.t) {
    case "hello":
      return checkHello(v);
    case "auth":
      return checkAuth(v);
    case "error": {
      const error: ErrorFrame = { t: "error", message: String(v.message ?? "").slice(0, 500) };
      if (typeof v.code === "string" && /^[a-z-]{1,40}$/.test(v.code)) error.code = v.code;
      return error;
    }
    case "ping":
    case "pong":
      return { t: v.t };
    case "gossip":
      if (!Array.isArray(v.r) || v.r.length > MAX_RECORDS) bad("gossip frame", v.r);
      return { t: "gossip", r: v.r.map(parseRecord) };
    case "digest":
      if (!isText(v.h, 100)) bad("digest frame", v.h);
      return { t: "digest", h: v.h };
    case "summary":
      return checkSummary(v);
    case "bcast":
      if (
        !isName(v.src) || !isId(v.id) || !isText(v.ch, MAX_CHANNEL) || !isSignature(v.sig)
      ) {
        bad("broadcast frame", { src: v.src, id: v.id, ch: v.ch, sig: v.sig });
      }
      if (typeof v.p !== "string") bad("broadcast payload", v.p);
      return { t: "bcast", src: v.src, id: v.id, ch: v.ch, p: v.p, sig: v.sig };
    case "msg":
      if (
        !isName(v.src) || !isName(v.dst) || !isId(v.id) || !isText(v.ch, MAX_CHANNEL) ||
        !isSignature(v.sig)
      ) {
        bad("message frame", { src: v.src, dst: v.dst, id: v.id, ch: v.ch, sig: v.sig });
      }
      if (typeof v.p !== "string") bad("message payload", v.p);
      if (!Number.isSafeInteger(v.ttl)) bad("message ttl", v.ttl);
      return {
        t: "msg",
        src: v.src,
        dst: v.dst,
        id: v.id,
        ch: v.ch,
        p: v.p,
        ttl: v.ttl as number,
        sig: v.sig,
      };
    default:
      throw new MalformedFrameError(`Unknown frame type "${v.t.slice(0, 40)}"`);
  }
}

function checkHello(v: Record<string, unknown>): HelloFrame {
  const proto = v.proto;
  if (
    !Array.isArray(proto) || proto.length !== 2 || !proto.every(Number.isSafeInteger) ||
    typeof v.nonce !== "string" || v.nonce.length < 16 || v.nonce.length > 128 ||
    typeof v.auth !== "boolean" || typeof v.dh !== "string" || !PUBLIC_KEY.test(v.dh)
  ) {
    bad("hello", v);
  }
  return { t: "hello", proto: [proto[0], proto[1]], nonce: v.nonce, auth: v.auth, dh: v.dh };
}

function checkAuth(v: Record<string, unknown>): AuthFrame {
  if (
    !isName(v.name) || !isText(v.nickname, 256) ||
    typeof v.incarnation !== "string" || !INCARNATION.test(v.incarnation) ||
    !Number.isSafeInteger(v.port) || (v.port as number) < 0 || (v.port as number) > 65535 ||
    typeof v.key !== "string" || !PUBLIC_KEY.test(v.key) || !isSignature(v.sig) ||
    (v.proof !== undefined && !isText(v.proof, 200))
  ) {
    bad("auth", v);
  }
  const auth: AuthFrame = {
    t: "auth",
    name: v.name,
    nickname: v.nickname,
    incarnation: v.incarnation,
    port: v.port as number,
    key: v.key,
    sig: v.sig,
  };
  if (v.proof !== undefined) auth.proof = v.proof;
  return auth;
}

function checkSummary(v: Record<string, unknown>): SummaryFrame {
  if (!Array.isArray(v.e) || v.e.length > MAX_RECORDS) bad("summary frame", v.e);
  if (v.reply !== undefined && typeof v.reply !== "boolean") bad("summary reply", v.reply);
  const entries: SummaryEntry[] = [];
  for (const entry of v.e as unknown[]) {
    if (
      !Array.isArray(entry) || !isName(entry[0]) || typeof entry[1] !== "string" ||
      !INCARNATION.test(entry[1]) || !Number.isSafeInteger(entry[2])
    ) {
      bad("summary entry", entry);
    }
    entries.push([entry[0], entry[1], entry[2]]);
  }
  return { t: "summary", reply: v.reply === true, e: entries };
}

/** The text of a frame; the inverse of `decodeFrame` for every frame this build sends. */
export function encodeFrame(frame: Frame): string {
  return JSON.stringify(frame);
}

/** A gossip frame from already-encoded records (so one record is serialised once). */
export function encodeGossip(encodedRecords: readonly string[]): string {
  return `{"t":"gossip","r":[${encodedRecords.join(",")}]}`;
}
