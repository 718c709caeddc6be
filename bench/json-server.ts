import { fork } from "node:child_process";
import { deadline } from "./cancel.js";

/** bench/json-server.mjs started as a child process: a provider that answers `{}` at once. */
export async function startJsonServer(): Promise<{ url: string; stop(): void }> {
  const child = fork(new URL("./json-server.mjs", import.meta.url), {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const port = await deadline(
    new Promise<number>((resolve) => {
      child.on("message", (m: { type: string; port: number }) => {
        if (m.type === "listening") resolve(m.port);
      });
    }),
    10_000,
    "the JSON server did not start",
  );
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill() };
}
