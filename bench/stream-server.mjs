// A loopback OpenAI-compatible streaming server in its own process, for the
// cancel benchmark. Every stream sends one token every TOKEN_MS until its
// client disconnects. It reports to its parent over IPC:
//   {type: "listening", port}, {type: "open", model, at}, {type: "closed", model, at}
// `at` is absolute (performance.timeOrigin + performance.now()), comparable across processes.
import { createServer } from "node:http";

const TOKEN_MS = Number(process.env.TOKEN_MS ?? 250);
const now = () => performance.timeOrigin + performance.now();

const server = createServer((req, res) => {
  let body = "";
  req.on("data", (d) => (body += d));
  req.on("end", () => {
    const model = JSON.parse(body).model;
    res.writeHead(200, { "content-type": "text/event-stream" });
    const token = () => res.write(`data: {"choices":[{"delta":{"content":"x "}}]}\n\n`);
    token();
    process.send({ type: "open", model, at: now() });
    const timer = setInterval(token, TOKEN_MS);
    req.socket.once("close", () => {
      clearInterval(timer);
      process.send({ type: "closed", model, at: now() });
    });
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () =>
  process.send({ type: "listening", port: server.address().port }),
);
process.on("disconnect", () => process.exit(0));
