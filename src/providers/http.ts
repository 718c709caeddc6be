import type { Dispatcher } from "undici";
import type { ProviderConfigOf } from "./config.js";
import { ensureOk, readJson, send } from "./http-client.js";
import type { Provider } from "./types.js";

/** `http`: POST `{"model", "input"}` to `url`; the JSON response is the output. */
export function httpProvider(
  name: string,
  config: ProviderConfigOf<"http">,
  agent: Dispatcher,
): Provider {
  return {
    name,
    config,
    async attempt(call) {
      const res = await send({
        agent,
        signal: call.ctx.signal,
        method: "POST",
        url: config.url,
        headers: config.headers,
        json: { model: call.model, input: call.input },
      });
      call.activity();
      await ensureOk(name, res);
      return readJson(name, res, call.activity);
    },
  };
}
