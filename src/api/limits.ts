/**
 * The admin API's limits, enforced before anything is buffered: a declared body over the cap is
 * refused from its Content-Length alone; an undeclared (chunked) one is counted as it streams
 * and cut off at the cap; a body that trickles in is cut off at a deadline; and requests beyond
 * a number in flight at once are turned away at the door. The API listens on loopback only,
 * but anything on the node can reach it, and a 300 MB body once grew the agent by 600 MB.
 */
import type { MiddlewareHandler } from "hono";
import { HttpError, PayloadTooLargeError, UnavailableError } from "./errors.ts";

export interface ApiLimits {
  /** Largest request body accepted (default 1 MiB: a GC list of thousands of pods fits). */
  maxBodyBytes: number;
  /** Time a request body may take to arrive (default 10 s). */
  bodyTimeoutMs: number;
  /** Requests handled at once (default 64); more are answered 503 at once. */
  maxConcurrent: number;
}

export const DEFAULT_LIMITS: ApiLimits = {
  maxBodyBytes: 1 << 20,
  bodyTimeoutMs: 10_000,
  maxConcurrent: 64,
};

/** Refuses a declared body over the cap, and requests beyond the concurrency cap. */
export function limitRequests(limits: ApiLimits): MiddlewareHandler {
  let active = 0;
  return async (c, next) => {
    checkDeclaredLength(c.req.raw, limits.maxBodyBytes);
    if (active >= limits.maxConcurrent) {
      throw new UnavailableError(
        `The admin API is busy: ${limits.maxConcurrent} requests are in progress; try again`,
      );
    }
    active++;
    try {
      await next();
    } finally {
      active--;
    }
  };
}

function checkDeclaredLength(request: Request, maxBytes: number): void {
  const declared = request.headers.get("content-length");
  if (declared !== null && !(Number(declared) <= maxBytes)) {
    throw new PayloadTooLargeError(
      `Request body of ${declared} bytes is over the admin API's limit of ${maxBytes} bytes`,
    );
  }
}

/** The body as text, counted while it streams: never more than `maxBytes` held. */
export async function readBody(request: Request, limits: ApiLimits): Promise<string> {
  checkDeclaredLength(request, limits.maxBodyBytes);
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, limits.bodyTimeoutMs);
  let failure: unknown;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limits.maxBodyBytes) {
        await reader.cancel().catch(() => {});
        throw new PayloadTooLargeError(
          `Request body is over the admin API's limit of ${limits.maxBodyBytes} bytes`,
        );
      }
      chunks.push(value);
    }
  } catch (error) {
    failure = error;
  } finally {
    clearTimeout(timer);
  }
  // a cancelled read may end the stream or fail it; either way the deadline is the reason
  if (timedOut) {
    throw new HttpError(408, `Request body did not arrive within ${limits.bodyTimeoutMs} ms`);
  }
  if (failure) throw failure;
  return await new Blob(chunks as BlobPart[]).text();
}
