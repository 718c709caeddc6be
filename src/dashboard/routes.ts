import { Hono } from "hono";
import { compress } from "hono/compress";
import type { Logger } from "../logger.js";
import { dashboardScript } from "./bundle.js";
import { DASHBOARD_CSS, DASHBOARD_HTML, FAVICON_SVG } from "./page.js";

// Everything the page loads comes from this origin; wallets inject through
// their extension, not through a script tag, so no other source is needed.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** `GET /` (SPEC.md section 6, the dashboard): the page, its script and its styles. */
export function dashboardRoutes(options: { logger: Logger; minify: boolean }): Hono {
  const app = new Hono();
  const script = dashboardScript({ minify: options.minify });
  const page = (body: string, type: string) =>
    new Response(body, {
      headers: {
        "content-type": type,
        "content-security-policy": CSP,
        "cache-control": "no-cache",
      },
    });
  app.get("/", () => page(DASHBOARD_HTML, "text/html; charset=utf-8"));
  app.get("/dashboard.css", () => page(DASHBOARD_CSS, "text/css; charset=utf-8"));
  app.get("/favicon.svg", () => page(FAVICON_SVG, "image/svg+xml"));
  // About 44 KB minified (lit-html, viem's SIWE message and checksum), 17 KB gzipped.
  app.get("/dashboard.js", compress(), async (c) => {
    try {
      return page(await script(), "text/javascript; charset=utf-8");
    } catch (err) {
      options.logger.error({ err }, "cannot bundle the dashboard script");
      return c.json(
        { error: { code: "unavailable", message: "the dashboard script is unavailable" } },
        503,
      );
    }
  });
  return app;
}
