import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * The simulated GPU endpoint behind the `demo` provider: an OpenAI-compatible
 * `POST /v1/chat/completions` on loopback that streams tokens at a steady
 * rate, so a new user can watch a job run and see a cancel close its
 * connection. It answers the prompt it was given (a deterministic text built
 * from it). A client that disconnects stops its stream at once.
 */
export interface DemoServer {
  readonly baseUrl: string;
  /** Streams in progress (a cancel makes this drop). */
  readonly activeStreams: number;
  close(): Promise<void>;
}

const WORDS =
  "quench streams these tokens from a simulated GPU on loopback so you can watch a job run and then press cancel to see the connection close within milliseconds".split(
    " ",
  );
const MAX_BODY = 1024 * 1024;

export async function startDemoServer(options: {
  tokensPerSecond: number;
  maxTokens: number;
}): Promise<DemoServer> {
  let active = 0;
  const server = createServer((req, res) => {
    if (req.method !== "POST" || req.url !== "/v1/chat/completions") {
      res
        .writeHead(404, { "content-type": "application/json" })
        .end('{"error":{"message":"not found"}}');
      return;
    }
    readBody(req)
      .then((body) => {
        active++;
        res.once("close", () => active--);
        stream(res, body, options);
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(400, { "content-type": "application/json" });
        res.end('{"error":{"message":"invalid request body"}}');
      });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    get activeStreams() {
      return active;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function readBody(req: IncomingMessage): Promise<ChatRequest> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) req.destroy(new Error("body too large"));
      else chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as ChatRequest);
      } catch (err) {
        reject(err);
      }
    });
  });
}

function stream(
  res: ServerResponse,
  body: ChatRequest,
  options: { tokensPerSecond: number; maxTokens: number },
) {
  const requested = Number(body.max_tokens);
  const total =
    Number.isInteger(requested) && requested > 0
      ? Math.min(requested, options.maxTokens)
      : options.maxTokens;
  const intervalMs = Math.max(1, 1000 / options.tokensPerSecond);
  const perTick = Math.max(1, Math.round((options.tokensPerSecond * intervalMs) / 1000));
  const model = typeof body.model === "string" ? body.model : "demo";
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  let sent = 0;
  const send = (chunk: unknown) => res.write(`data: ${JSON.stringify(chunk)}\n\n`);
  const words = answerWords(body, options.tokensPerSecond);
  const timer = setInterval(() => {
    for (let i = 0; i < perTick && sent < total; i++, sent++) {
      send({
        model,
        choices: [{ index: 0, delta: { content: `${words(sent)} ` } }],
      });
    }
    if (sent < total) return;
    clearInterval(timer);
    send({ model, choices: [{ index: 0, delta: {}, finish_reason: "length" }] });
    send({
      model,
      choices: [],
      usage: {
        prompt_tokens: promptTokens(body),
        completion_tokens: total,
        total_tokens: promptTokens(body) + total,
      },
    });
    res.end("data: [DONE]\n\n");
  }, intervalMs);
  res.once("close", () => clearInterval(timer));
}

/** The last user message's text, if the request has one. */
function promptOf(body: ChatRequest): string {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (
      typeof m?.content === "string" &&
      m.content.trim() !== "" &&
      (m.role ?? "user") === "user"
    ) {
      return m.content.trim();
    }
  }
  return "";
}

/**
 * The demo's answer, word by word: deterministic and built from the prompt,
 * so a first job visibly answers the person who submitted it. It quotes the
 * prompt, says what the demo is, then numbers the prompt's words line by
 * line for as long as tokens last. Without a prompt, a fixed sentence.
 */
function answerWords(body: ChatRequest, tokensPerSecond: number): (i: number) => string {
  const prompt = promptOf(body).replace(/\s+/g, " ").slice(0, 2_000);
  if (prompt === "") return (i) => WORDS[i % WORDS.length] ?? "";
  const head = [
    ...`You asked: "${prompt}".`.split(" "),
    ...`This is quench's demo provider, a simulated GPU on loopback. It answers with your own words, ${tokensPerSecond} tokens a second, so you can watch the job run and press Cancel at any time:`.split(
      " ",
    ),
  ];
  const own = prompt.split(" ");
  return (i) => {
    if (i < head.length) return head[i] ?? "";
    const k = i - head.length;
    const word = own[k % own.length] ?? "";
    return k % own.length === 0 ? `\n${Math.floor(k / own.length) + 1}. ${word}` : word;
  };
}

function promptTokens(body: ChatRequest): number {
  const text = (body.messages ?? [])
    .map((m) => (typeof m?.content === "string" ? m.content : ""))
    .join(" ");
  return text.split(/\s+/).filter(Boolean).length;
}

interface ChatRequest {
  model?: unknown;
  max_tokens?: unknown;
  messages?: { role?: unknown; content?: unknown }[];
}
