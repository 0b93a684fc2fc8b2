/**
 * A headless Chromium for page tests, driven over the DevTools protocol with no npm package:
 * the browser runs inside a network namespace (through cdp_bridge.ts) and this side speaks CDP
 * over the bridge's stdin/stdout. Enough for our tests: open a page, evaluate script in it, wait
 * for a condition, take a screenshot, and list every request the page made.
 *
 *   await using browser = await Browser.launch({ netns: "lab-n1" });
 *   const page = await browser.open("http://127.0.0.1:6784/ui");
 *   await page.waitFor("document.body.dataset.state === 'live'");
 */
import { run } from "../../src/net/exec.ts";

const BRIDGE = new URL("./cdp_bridge.ts", import.meta.url).pathname;

/** Where page tests keep their screenshots: dist/test-artifacts/ or $WEFT_TEST_ARTIFACTS. */
export const ARTIFACTS = Deno.env.get("WEFT_TEST_ARTIFACTS") ??
  new URL("../../dist/test-artifacts/", import.meta.url).pathname;

/** Labels of the graph whose visible characters are covered by something else. */
export const OVERLAPPING_LABELS = `(() => {
  const covered = [];
  for (const text of document.querySelectorAll("#graph text.node-label")) {
    text.scrollIntoView({ block: "center", inline: "center" });
    const matrix = text.getScreenCTM();
    for (let i = 0; i < text.getNumberOfChars(); i++) {
      const box = text.getExtentOfChar(i);
      if (box.width === 0) continue;
      const point = new DOMPoint(box.x + box.width / 2, box.y + box.height / 2).matrixTransform(matrix);
      const top = document.elementFromPoint(point.x, point.y);
      if (top !== text) { covered.push(text.textContent + " at char " + i); break; }
    }
  }
  return covered;
})()`;

const COMMAND_TIMEOUT_MS = 30_000;

/** Whether a Chromium the tests can drive is installed (CI installs Debian's package). */
export async function chromiumAvailable(): Promise<boolean> {
  try {
    const info = await Deno.stat(Deno.env.get("WEFT_TEST_CHROMIUM") ?? "/usr/bin/chromium");
    return info.isFile;
  } catch {
    return false;
  }
}

interface Pending {
  resolve: (value: Record<string, unknown>) => void;
  reject: (error: Error) => void;
  method: string;
}

type EventHandler = (params: Record<string, unknown>, sessionId?: string) => void;

export class Browser implements AsyncDisposable {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #handlers = new Map<string, EventHandler[]>();
  #reading: Promise<void>;
  #closed = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#reading = this.#read();
  }

  /** Starts Chromium inside `netns` (which must exist and have its loopback up). */
  static async launch(options: { netns: string }): Promise<Browser> {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", options.netns, Deno.execPath(), "run", "-A", "--no-config", BRIDGE],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const browser = new Browser(child);
    // The first answer proves the bridge reached the browser.
    await browser.send("Browser.getVersion");
    return browser;
  }

  async #read(): Promise<void> {
    const decoder = new TextDecoder();
    let buffered = "";
    for await (const chunk of this.#child.stdout) {
      buffered += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.trim()) this.#dispatch(JSON.parse(line));
      }
    }
    this.#closed = true;
    for (const pending of this.#pending.values()) {
      pending.reject(new Error(`Browser exited before answering ${pending.method}`));
    }
    this.#pending.clear();
  }

  #dispatch(message: Record<string, unknown>): void {
    if (typeof message.id === "number") {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      const error = message.error as { message?: string } | undefined;
      if (error) pending.reject(new Error(`${pending.method}: ${error.message ?? "failed"}`));
      else pending.resolve((message.result ?? {}) as Record<string, unknown>);
      return;
    }
    const method = message.method as string;
    for (const handler of this.#handlers.get(method) ?? []) {
      handler((message.params ?? {}) as Record<string, unknown>, message.sessionId as string);
    }
  }

  on(method: string, handler: EventHandler): void {
    const list = this.#handlers.get(method) ?? [];
    list.push(handler);
    this.#handlers.set(method, list);
  }

  /** Sends one CDP command (to a page when `sessionId` is given) and waits for its answer. */
  send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<Record<string, unknown>> {
    if (this.#closed) return Promise.reject(new Error(`Browser is closed (${method})`));
    const id = this.#nextId++;
    const line = JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`No answer to ${method} within ${COMMAND_TIMEOUT_MS} ms`));
      }, COMMAND_TIMEOUT_MS);
      this.#pending.set(id, {
        method,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.#writer.write(new TextEncoder().encode(`${line}\n`)).catch(reject);
    });
  }

  /** Opens a new tab on `url` and waits for its load event. */
  async open(url: string): Promise<Page> {
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true });
    const page = new Page(this, sessionId as string);
    await page.enable();
    await page.goto(url);
    return page;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.#writer.close();
    } catch { /* already closed */ }
    await this.#reading.catch(() => {});
    await this.#child.status;
  }
}

export class Page {
  /** Every URL the page requested, in order (documents, scripts, fetches, images, ...). */
  readonly requests: string[] = [];
  /** Script errors and console errors, including Content-Security-Policy violations. */
  readonly errors: string[] = [];
  #browser: Browser;
  #session: string;
  #loaded: Array<() => void> = [];

  constructor(browser: Browser, session: string) {
    this.#browser = browser;
    this.#session = session;
    const mine = (handler: EventHandler): EventHandler => (params, sessionId) => {
      if (sessionId === session) handler(params, sessionId);
    };
    browser.on(
      "Network.requestWillBeSent",
      mine((p) => this.requests.push(String((p.request as { url: string }).url))),
    );
    browser.on("Page.loadEventFired", mine(() => this.#loaded.splice(0).forEach((f) => f())));
    browser.on(
      "Runtime.exceptionThrown",
      mine((p) => this.errors.push(JSON.stringify(p.exceptionDetails).slice(0, 500))),
    );
    browser.on(
      "Log.entryAdded",
      mine((p) => {
        const entry = p.entry as { level: string; text: string; url?: string };
        if (entry.level === "error") this.errors.push(`${entry.text} ${entry.url ?? ""}`.trim());
      }),
    );
  }

  async enable(): Promise<void> {
    for (const domain of ["Page", "Runtime", "Network", "Log"]) {
      await this.#browser.send(`${domain}.enable`, {}, this.#session);
    }
  }

  async goto(url: string): Promise<void> {
    const loaded = new Promise<void>((resolve) => this.#loaded.push(resolve));
    const result = await this.#browser.send("Page.navigate", { url }, this.#session);
    if (result.errorText) throw new Error(`Cannot open ${url}: ${result.errorText}`);
    await loaded;
  }

  /** Evaluates an expression in the page (awaiting promises) and returns its JSON value. */
  async evaluate<T = unknown>(expression: string): Promise<T> {
    const result = await this.#browser.send("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    }, this.#session);
    const details = result.exceptionDetails as {
      text?: string;
      exception?: { description?: string };
    };
    if (details) {
      throw new Error(`Script failed: ${details.exception?.description ?? details.text}`);
    }
    return (result.result as { value: T }).value;
  }

  /**
   * Polls `expression` until it is truthy; throws with the last value after `timeoutMs`. A
   * deadline the behaviour under test promises (e.g. "shows within 10 s"), not a benchmark.
   */
  async waitFor(
    expression: string,
    options: { timeoutMs?: number; describe?: string } = {},
  ): Promise<unknown> {
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    let last: unknown;
    while (true) {
      last = await this.evaluate(expression);
      if (last) return last;
      if (Date.now() > deadline) {
        throw new Error(
          `Timed out waiting for ${options.describe ?? expression}: last value ${
            JSON.stringify(last)
          }`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Saves a PNG of the whole page (beyond the viewport). */
  async screenshot(path: string): Promise<void> {
    const { data } = await this.#browser.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
    }, this.#session);
    const bytes = Uint8Array.from(atob(data as string), (c) => c.charCodeAt(0));
    await Deno.writeFile(path, bytes);
  }
}

/** Creates a namespace with only a loopback: a sandbox for a browser and the page's server. */
export async function loopbackNamespace(name: string): Promise<AsyncDisposable> {
  await run(["ip", "netns", "del", name], { allowFailure: true });
  await run(["ip", "netns", "add", name]);
  await run(["ip", "-n", name, "link", "set", "lo", "up"]);
  return {
    async [Symbol.asyncDispose]() {
      const pids = await run(["ip", "netns", "pids", name], { allowFailure: true });
      for (const pid of pids.stdout.split("\n").filter(Boolean)) {
        try {
          Deno.kill(Number(pid), "SIGKILL");
        } catch { /* gone */ }
      }
      await run(["ip", "netns", "del", name], { allowFailure: true });
    },
  };
}
