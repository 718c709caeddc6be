/**
 * Keys typed on the terminal, one string per key press, while `signal` is
 * not aborted. stdin is put in raw mode for the time (Ctrl-C is then a key:
 * it is turned back into SIGINT, so it still stops watching) and restored
 * when the iteration ends, however it ends.
 */
export async function* terminalKeys(signal: AbortSignal): AsyncGenerator<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) return;
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  const onData = (chunk: Buffer) => {
    const key = chunk.toString("utf8");
    if (key === "\u0003") {
      process.kill(process.pid, "SIGINT");
      return;
    }
    queue.push(key);
    wake?.();
  };
  const onAbort = () => wake?.();
  stdin.setRawMode(true);
  stdin.resume();
  stdin.on("data", onData);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    while (!signal.aborted) {
      const key = queue.shift();
      if (key !== undefined) {
        yield key;
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    stdin.off("data", onData);
    stdin.setRawMode(false);
    stdin.pause();
  }
}
