/**
 * Waits until `condition` holds, checking every `everyMs`; throws, naming
 * `what`, if it still does not hold after `ms`. For events with no
 * notification to wait on (a log line written, a row changed by another process).
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  ms: number,
  what = "condition",
  everyMs = 5,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
