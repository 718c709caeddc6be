// The `quench/client` package export: everything a program needs to call quench.
export { type CallOptions, type ClientOptions, createClient, type QuenchClient } from "./client.js";
export { type FieldProblem, isQuenchError, QuenchError, type QuenchErrorCode } from "./errors.js";
export { outputText, remoteStopText, stopDelayMs, usageText } from "./job-facts.js";
export {
  type MessageSigner,
  type SiweOptions,
  signInWithAccount,
  signInWithWallet,
} from "./siwe.js";
export type * from "./types.js";
