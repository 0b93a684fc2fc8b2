/**
 * STATUS: the node can take pods when the agent answers and says it is ready. Anything else is
 * code 50, which tells the runtime to hold ADDs back rather than fail pods one by one.
 */

import type { HandlerContext } from "./context.ts";
import { CniCode, CniError } from "./errors.ts";

export async function status(context: HandlerContext): Promise<undefined> {
  const address = context.config.agent;
  let answer;
  try {
    answer = await context.agent.status();
  } catch (error) {
    throw new CniError(
      CniCode.pluginNotAvailable,
      `Weft agent at ${address} is not available: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (answer?.ready !== true) {
    const reason = typeof answer?.reason === "string" ? `: ${answer.reason}` : "";
    throw new CniError(
      CniCode.pluginNotAvailable,
      `Weft agent at ${address} is not ready yet${reason}`,
    );
  }
  return undefined;
}
