/** Where the CLI finds the server when neither --url nor QUENCH_URL says. */
export const DEFAULT_URL = "http://127.0.0.1:8080";
