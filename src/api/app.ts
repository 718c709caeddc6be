import { Hono } from "hono";
import type { Database } from "../db/connection.js";
import type { Logger } from "../logger.js";
import { errorBody, makeErrorHandler } from "./errors.js";
import { operationsRoutes } from "./operations.js";

export interface AppDeps {
  database: Database;
  logger: Logger;
  instance: string;
  role: string;
  runningJobs: () => number;
  isDraining: () => boolean;
}

/** The HTTP application: every route group mounted on one hono app. */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.onError(
    makeErrorHandler((err, c) =>
      deps.logger.error({ err, method: c.req.method, path: c.req.path }, "unhandled error"),
    ),
  );
  // While draining, every response asks the client to reconnect elsewhere, so
  // keep-alive sockets do not hold server.close() open (DESIGN.md, shutdown).
  app.use(async function connectionCloseWhileDraining(c, next) {
    await next();
    if (deps.isDraining()) c.header("Connection", "close");
  });
  app.notFound((c) =>
    c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404),
  );
  app.route("/", operationsRoutes(deps));
  return app;
}
