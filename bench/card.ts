import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { contextWithWallet, HAVE_CHROMIUM, launchChromium } from "../test/helpers/browser.js";
import { startServer } from "../test/helpers/server.js";
import { type Stats, summarize } from "./stats.js";

/**
 * A job's end → its card in the dashboard showing it: a real server process
 * (`npm start`'s entry), Debian's Chromium signed in with a wallet, `jobs`
 * demo jobs run one at a time from the page. Each is timed from its
 * `finished_at` (the database's clock) to the page seeing the card's status
 * turn `completed` (the browser's clock; one machine, one wall clock, ms
 * precision). Undefined where Chromium is not installed.
 */
export async function cardBench(jobs = 20): Promise<Stats | undefined> {
  if (!HAVE_CHROMIUM) return undefined;
  const server = await startServer(
    "bench-card",
    {},
    {
      demo: { kind: "demo", tokens_per_second: 400, max_tokens: 20 },
    },
  );
  const browser = await launchChromium();
  const delays: number[] = [];
  try {
    const wallet = privateKeyToAccount(generatePrivateKey());
    const context = await contextWithWallet(browser, wallet);
    const page = await context.newPage();
    await page.goto(server.url);
    await page.getByRole("button", { name: "Sign in with wallet" }).click();
    await page.locator("#workspace").waitFor({ state: "visible", timeout: 15_000 });
    // When each card first shows `completed`, by the page's clock.
    await page.evaluate(() => {
      const seen: Record<string, number> = {};
      (window as unknown as { completedAt: Record<string, number> }).completedAt = seen;
      new MutationObserver(() => {
        for (const li of document.querySelectorAll<HTMLElement>("li.job[data-status=completed]")) {
          const id = li.dataset.jobId;
          if (id !== undefined && seen[id] === undefined) seen[id] = Date.now();
        }
      }).observe(document.body, { subtree: true, attributes: true, childList: true });
    });
    for (let i = 0; i < jobs; i++) {
      const before = await page.locator("li.job").count();
      await page.getByRole("button", { name: "Run demo job" }).click();
      await page.locator("li.job").nth(before).waitFor({ timeout: 10_000 });
      const id = (await page.locator("li.job").first().getAttribute("data-job-id")) as string;
      await page.waitForFunction(
        (jobId) =>
          (window as unknown as { completedAt: Record<string, number> }).completedAt[jobId] !==
          undefined,
        id,
        { timeout: 15_000 },
      );
      const shownAt = await page.evaluate(
        (jobId) =>
          (window as unknown as { completedAt: Record<string, number> }).completedAt[
            jobId
          ] as number,
        id,
      );
      const session = await page.evaluate(() =>
        JSON.parse(sessionStorage.getItem("quench.session") ?? "{}"),
      );
      const job = (await (
        await fetch(`${server.url}/api/v1/jobs/${id}`, {
          headers: { authorization: `Bearer ${session.token}` },
        })
      ).json()) as { finished_at: string };
      delays.push(shownAt - Date.parse(job.finished_at));
    }
    await context.close();
  } finally {
    await browser.close();
    await server.stop();
  }
  return summarize(delays);
}
