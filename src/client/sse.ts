import { type EventSourceMessage, EventSourceParserStream } from "eventsource-parser/stream";

/**
 * The messages of a `text/event-stream` body, in order. The iteration ends
 * when the server closes the stream or `signal` aborts (no error either way);
 * leaving the loop early cancels the body, which closes the connection.
 * Works in Node 20 and browsers: only web streams are used.
 */
export async function* sseMessages(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<EventSourceMessage> {
  const reader = (body as ReadableStream<BufferSource>)
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new EventSourceParserStream())
    .getReader();
  const onAbort = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    while (!signal?.aborted) {
      let next: ReadableStreamReadResult<EventSourceMessage>;
      try {
        next = await reader.read();
      } catch (err) {
        if (signal?.aborted) return;
        throw err;
      }
      if (next.done) return;
      yield next.value;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await reader.cancel().catch(() => {});
  }
}
