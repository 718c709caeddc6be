// A loopback provider for the throughput benchmark, in its own process so that
// its CPU is not the runner's: every request is answered `{}` as soon as its
// body has arrived. It reports {type: "listening", port} to its parent over IPC.
import { createServer } from "node:http";

const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () =>
  process.send({ type: "listening", port: server.address().port }),
);
process.on("disconnect", () => process.exit(0));
