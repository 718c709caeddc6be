import { pino } from "pino";

export type Logger = pino.Logger;

/**
 * One JSON line per event. Credentials never reach a line: the paths below
 * are censored wherever a caller logs a request, headers or config.
 */
export function createLogger(options: {
  level: string;
  instance: string;
  /** A file to append to instead of stdout (tests). */
  destination?: string;
}): Logger {
  const destination =
    options.destination === undefined
      ? undefined
      : pino.destination({ dest: options.destination, append: true, sync: true });
  return pino(
    {
      level: options.level,
      base: { instance: options.instance },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          "authorization",
          "*.authorization",
          "headers.authorization",
          "req.headers.authorization",
          "req.headers.cookie",
          "token",
          "*.token",
          "signature",
          "*.signature",
          "databaseUrl",
          "sessionSecret",
          "serviceJwt.secret",
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
