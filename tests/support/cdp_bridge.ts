/**
 * Runs inside a network namespace (`ip netns exec NS deno run -A cdp_bridge.ts`): starts a
 * headless Chromium there and relays the DevTools protocol between its WebSocket and this
 * process's stdin/stdout, one JSON message per line. The test process drives the browser
 * through the pipe, so the browser sees only the namespace's network (the lab node's loopback,
 * where its agent serves the page) and can reach nothing else.
 *
 * Closing stdin stops the browser and removes its profile directory.
 */
const CHROMIUM = Deno.env.get("WEFT_TEST_CHROMIUM") ?? "/usr/bin/chromium";

const profile = await Deno.makeTempDir({ prefix: "weft-chromium-" });
const browser = new Deno.Command(CHROMIUM, {
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    `--user-data-dir=${profile}`,
    "--remote-debugging-port=0",
    "about:blank",
  ],
  stdin: "null",
  stdout: "null",
  stderr: "null",
}).spawn();

async function cleanUp(): Promise<void> {
  try {
    browser.kill("SIGKILL");
  } catch { /* already gone */ }
  await browser.status;
  await Deno.remove(profile, { recursive: true }).catch(() => {});
}

/** Chromium writes "port\n/devtools/browser/<id>" once it listens. */
async function endpoint(): Promise<string> {
  for (let attempt = 0; attempt < 300; attempt++) {
    try {
      const [port, path] = (await Deno.readTextFile(`${profile}/DevToolsActivePort`)).split("\n");
      if (port && path) return `ws://127.0.0.1:${port}${path}`;
    } catch { /* not yet */ }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("Chromium did not open its DevTools port within 30 s");
}

const encoder = new TextEncoder();
try {
  const socket = new WebSocket(await endpoint());
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error("Cannot connect to Chromium's DevTools socket"));
  });
  const closed = new Promise<void>((resolve) => socket.onclose = () => resolve());
  socket.onmessage = (event) => {
    Deno.stdout.writeSync(encoder.encode(`${String(event.data).replaceAll("\n", " ")}\n`));
  };
  let buffered = "";
  const decoder = new TextDecoder();
  for await (const chunk of Deno.stdin.readable) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.trim()) socket.send(line);
    }
  }
  socket.close();
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 1000))]);
} finally {
  await cleanUp();
}
