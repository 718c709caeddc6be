// A webhook receiver in its own process, for the webhook benchmark: `/ok`
// answers 204, `/hang` never answers (the sender's 10 s timeout ends it).
// It reports each request to its parent over IPC:
//   {type: "listening", port}, {type: "received", path, event, jobId, at}
// `at` is absolute (performance.timeOrigin + performance.now()), comparable across processes.
import { createServer } from "node:http";

const now = () => performance.timeOrigin + performance.now();

const server = createServer((req, res) => {
  let body = "";
  req.on("data", (d) => (body += d));
  req.on("end", () => {
    const at = now();
    const parsed = JSON.parse(body);
    process.send({
      type: "received",
      path: req.url,
      event: parsed.type,
      jobId: parsed.data.id,
      at,
    });
    if (req.url?.startsWith("/hang")) return;
    res.writeHead(204).end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () =>
  process.send({ type: "listening", port: server.address().port }),
);
