import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../src/client/client.js";
import { newWallet } from "../helpers/api.js";
import { contextWithWallet, HAVE_CHROMIUM, launchChromium } from "../helpers/browser.js";
import { runCli } from "../helpers/cli.js";
import { rememberSecret } from "../helpers/logs.js";
import { ROOT } from "../helpers/process.js";
import { type RunningServer, startServer } from "../helpers/server.js";

const ARTIFACTS = join(ROOT, "test-artifacts");
// .ci/run installs Debian's chromium; elsewhere, without it, this file says so and skips.
const browserTest = HAVE_CHROMIUM || process.env.CI ? describe : describe.skip;
const title = HAVE_CHROMIUM
  ? "the dashboard in headless Chromium, signed in with a wallet"
  : "the dashboard in headless Chromium (skipped: /usr/bin/chromium is missing; apt-get install chromium)";

browserTest(title, () => {
  let server: RunningServer;
  let browser: Browser;
  beforeAll(async () => {
    server = await startServer(
      "dashboard-test",
      {},
      {
        demo: { kind: "demo", tokens_per_second: 30, max_tokens: 100_000 },
        // Port 1 on loopback: nothing listens, every call fails to connect.
        broken: { kind: "http", url: "http://127.0.0.1:1/run" },
        trainer: {
          kind: "process",
          command: [
            process.execPath,
            new URL("../fakes/scripts/trainer.mjs", import.meta.url).pathname,
          ],
          grace_ms: 300,
        },
      },
    );
    browser = await launchChromium();
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  /**
   * A page signed in with a new wallet. Errors the page throws, from its
   * first load on, are collected in `pageErrors`.
   */
  async function signedIn(viewport?: { width: number; height: number }) {
    const wallet = newWallet();
    const context = await contextWithWallet(browser, wallet, viewport);
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(err.message));
    await page.goto(server.url);
    await page.getByRole("button", { name: "Sign in with wallet" }).click();
    await expect
      .poll(() => page.locator("#account span").getAttribute("title"), { timeout: 15_000 })
      .toBe(wallet.address);
    return { wallet, context, page, pageErrors };
  }

  /** Runs a demo job from the page and waits until its card streams more than `chars` characters. */
  async function streamingDemoJob(page: Page, prompt: string, chars: number) {
    await page.getByLabel("Prompt for a demo job").fill(prompt);
    await page.getByRole("button", { name: "Run demo job" }).click();
    const card = page.locator("li.job").first();
    await expect.poll(() => card.getAttribute("data-status"), { timeout: 15_000 }).toBe("running");
    await expect
      .poll(async () => (await card.locator("pre.output").textContent())?.length ?? 0, {
        timeout: 15_000,
      })
      .toBeGreaterThan(chars);
    return card;
  }

  /** A client with the session the page signed in with. */
  async function clientOf(page: Page) {
    const session = await page.evaluate(() =>
      JSON.parse(sessionStorage.getItem("quench.session") ?? "{}"),
    );
    return createClient({ url: server.url, token: session.token });
  }

  /** Presses Cancel on the page's newest job, confirms, and waits for it to show cancelled. */
  async function cancelNewest(page: Page) {
    await page.locator("li.job button[data-action=cancel]").click();
    await page.locator("dialog#confirm").getByRole("button", { name: "Cancel job" }).click();
    await expect
      .poll(() => page.locator("li.job").first().getAttribute("data-status"), { timeout: 15_000 })
      .toBe("cancelled");
  }

  it("signs in, submits a demo job, sees it stream, cancels it with a confirmation and shows the stop time", async () => {
    const { wallet, context, page, pageErrors } = await signedIn();
    await expect.poll(() => page.locator("#empty").isVisible()).toBe(true);

    const card = await streamingDemoJob(page, "a prompt from the browser test", 20);
    const jobId = (await card.getAttribute("data-job-id")) as string;
    // The card says what was asked, when, and for how long it has run (moving on each second).
    expect(await card.locator(".prompt").textContent()).toBe("a prompt from the browser test");
    expect(await card.locator(".job-meta time").getAttribute("datetime")).toMatch(/^\d{4}-/);
    const elapsed = () => card.locator(".elapsed").textContent();
    await expect.poll(elapsed).toMatch(/^running for \d/);
    const first = await elapsed();
    await expect.poll(elapsed, { timeout: 5_000 }).not.toBe(first);

    // Every label the Cancel button shows, recorded as the DOM changes.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { cancelLabels: string[] }).cancelLabels = seen;
      new MutationObserver(() => {
        for (const b of document.querySelectorAll("button[data-action=cancel]")) {
          const text = b.textContent ?? "";
          if (seen.at(-1) !== text) seen.push(text);
        }
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await card.getByRole("button", { name: "Cancel" }).click();
    const dialog = page.locator("dialog#confirm");
    await expect.poll(() => dialog.isVisible()).toBe(true);
    expect(await dialog.textContent()).toContain(`Cancel job ${jobId.slice(0, 8)}?`);
    await dialog.getByRole("button", { name: "Cancel job" }).click();

    await expect
      .poll(() => card.getAttribute("data-status"), { timeout: 15_000 })
      .toBe("cancelled");
    await expect
      .poll(() => card.locator(".stop-time").textContent(), { timeout: 15_000 })
      .toMatch(/^Stopped \d+ ms after the cancel\.$/);
    expect(await card.locator("button[data-action=cancel]").count()).toBe(0);
    expect(await elapsed()).toMatch(/^ran \d/);
    const labels = await page.evaluate(
      () => (window as unknown as { cancelLabels: string[] }).cancelLabels,
    );
    expect(labels).toContain("Cancelling…");
    await expect
      .poll(() => page.locator(".toast span").allTextContents())
      .toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^Cancelled job ${jobId.slice(0, 8)}: work stopped \\d+ ms after the cancel\\.$`,
          ),
        ),
      );
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });

    // The server agrees: cancelled, with the dashboard's reason, stopped.
    const job = await (await clientOf(page)).job(jobId);
    expect(job).toMatchObject({
      status: "cancelled",
      cancel_reason: "cancelled from the dashboard",
      owner: wallet.address,
    });
    expect(job.stopped_at).not.toBeNull();
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it("offers Resume on a stopped job: the new job runs, the old card says what resumed it", async () => {
    const { context, page, pageErrors } = await signedIn();
    await page.getByLabel("Prompt for a demo job").fill("resume me");
    await page.getByRole("button", { name: "Run demo job" }).click();
    const old = page.locator("li.job").first();
    // Queued or running: earlier tests may still hold the runner's slots.
    await expect
      .poll(() => old.getAttribute("data-status"), { timeout: 15_000 })
      .toMatch(/^(queued|running)$/);
    const oldId = (await old.getAttribute("data-job-id")) as string;
    expect(await old.locator("button[data-action=resume]").count()).toBe(0);
    await cancelNewest(page);
    const resume = page.locator(`li.job[data-job-id="${oldId}"] button[data-action=resume]`);
    await expect.poll(() => resume.count(), { timeout: 15_000 }).toBe(1);
    await resume.click();
    await expect.poll(() => page.locator("li.job").count(), { timeout: 15_000 }).toBe(2);
    const fresh = page.locator("li.job").first();
    const freshId = (await fresh.getAttribute("data-job-id")) as string;
    expect(freshId).not.toBe(oldId);
    await expect
      .poll(() => fresh.getAttribute("data-status"), { timeout: 15_000 })
      .toMatch(/^(queued|running)$/);
    await expect
      .poll(() => page.locator(`li.job[data-job-id="${oldId}"]`).textContent(), { timeout: 15_000 })
      .toContain(`Resumed as job ${freshId.slice(0, 8)}.`);
    expect(
      await page.locator(`li.job[data-job-id="${oldId}"] button[data-action=resume]`).count(),
    ).toBe(0);
    expect(await fresh.textContent()).toContain(`Resumes job ${oldId.slice(0, 8)}.`);
    await expect
      .poll(() => page.locator(".toast span").allTextContents())
      .toContainEqual(expect.stringMatching(new RegExp(`^Resumed job ${oldId.slice(0, 8)} as `)));
    expect((await (await clientOf(page)).job(freshId)).resumed_from).toBe(oldId);
    await (await clientOf(page)).cancel(freshId);
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it("shows a training run's progress as a bar with step, total and message", async () => {
    const { context, page, pageErrors } = await signedIn();
    const client = await clientOf(page);
    const job = await client.submit({
      executions: [
        {
          key: "train",
          provider: "trainer",
          model: "resnet",
          input: {
            pidFile: join(tmpdir(), `quench-dash-pids-${Date.now()}.json`),
            runMs: 600_000,
            reportEveryMs: 50,
            total: 500,
          },
        },
      ],
    });
    const card = page.locator(`li.job[data-job-id="${job.id}"]`);
    await expect
      .poll(() => card.locator(".progress span").textContent(), { timeout: 15_000 })
      .toMatch(/^step \d+\/500 \(\d+%\) batch \d+$/);
    const value = Number(await card.locator(".progress progress").getAttribute("value"));
    expect(value).toBeGreaterThan(0);
    expect(value).toBeLessThanOrEqual(1);
    await client.cancel(job.id);
    // Cancelled, it still says how far it got.
    await expect
      .poll(() => card.getAttribute("data-status"), { timeout: 15_000 })
      .toBe("cancelled");
    expect(await card.locator(".progress span").textContent()).toMatch(/^step \d+\/500/);
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it("updates in place: focus on Cancel survives ten updates, a selection survives the stream", async () => {
    const { context, page, pageErrors } = await signedIn();
    const card = await streamingDemoJob(page, "keep my focus and my selection", 30);
    // Focus the Cancel button, select the first 20 characters of the output, then count updates.
    await card.locator("button[data-action=cancel]").focus();
    const selected = await page.evaluate(() => {
      const w = window as unknown as { kept: Element | null; updates: number };
      w.kept = document.activeElement;
      w.updates = 0;
      const pre = document.querySelector("li.job pre.output");
      if (pre === null) throw new Error("no output");
      new MutationObserver(() => {
        w.updates++;
      }).observe(pre, { subtree: true, childList: true, characterData: true });
      // The first 20 characters, across the text nodes the pieces arrived in.
      const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
      const range = document.createRange();
      let seen = 0;
      for (let node = walker.nextNode(); node !== null; node = walker.nextNode()) {
        const length = (node.textContent ?? "").length;
        if (seen === 0 && length > 0) range.setStart(node, 0);
        if (seen + length >= 20) {
          range.setEnd(node, 20 - seen);
          break;
        }
        seen += length;
      }
      const selection = getSelection();
      selection?.removeAllRanges();
      selection?.addRange(range);
      return selection?.toString() ?? "";
    });
    expect(selected).toHaveLength(20);
    await expect
      .poll(() => page.evaluate(() => (window as unknown as { updates: number }).updates), {
        timeout: 15_000,
      })
      .toBeGreaterThanOrEqual(10);
    const after = await page.evaluate(() => {
      const w = window as unknown as { kept: Element | null };
      return {
        sameFocus: document.activeElement === w.kept && w.kept?.isConnected === true,
        selection: getSelection()?.toString() ?? "",
      };
    });
    expect(after).toEqual({ sameFocus: true, selection: selected });
    await (await clientOf(page)).cancel((await card.getAttribute("data-job-id")) as string);
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it("asks a wallet on another chain to switch (EIP-3326), then signs in", async () => {
    const wallet = newWallet();
    const context = await contextWithWallet(browser, wallet, undefined, { chainId: 5 });
    const page = await context.newPage();
    await page.goto(server.url);
    await page.getByRole("button", { name: "Sign in with wallet" }).click();
    await expect
      .poll(() => page.locator("#account span").getAttribute("title"), { timeout: 15_000 })
      .toBe(wallet.address);
    const calls = await page.evaluate(
      () => (window as unknown as { walletCalls: string[] }).walletCalls,
    );
    expect(calls).toContain("wallet_switchEthereumChain");
    expect(await page.locator(".toast.error").count()).toBe(0);
    await context.close();
  });

  it("a declined signature is said plainly, without the wallet library's text", async () => {
    const context = await contextWithWallet(browser, newWallet(), undefined, {
      rejectSignatures: true,
    });
    const page = await context.newPage();
    await page.goto(server.url);
    await page.getByRole("button", { name: "Sign in with wallet" }).click();
    await expect
      .poll(() => page.locator(".toast.error span").allTextContents(), { timeout: 10_000 })
      .toEqual(["You declined the request in your wallet: not signed in."]);
    // Toasts can be dismissed.
    await page.locator(".toast.error button").click();
    expect(await page.locator(".toast").count()).toBe(0);
    expect(await page.locator("#signin").isVisible()).toBe(true);
    await context.close();
  });

  it("signs in with a pasted token when there is no wallet, kept only in sessionStorage; serves a favicon", async () => {
    const minted = await runCli(["token", "--json"], { DATA_DIR: server.env.DATA_DIR as string });
    const token = (JSON.parse(minted.stdout) as { token: string }).token;
    rememberSecret(token);
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url);
    await page.getByText("No wallet? Sign in with a token").click();
    await page.getByLabel(/A quench token/).fill("not-a-token");
    await page.getByRole("button", { name: "Sign in with token" }).click();
    await expect
      .poll(() => page.locator(".toast.error span").allTextContents(), { timeout: 10_000 })
      .toContainEqual(expect.stringContaining("not a quench token"));
    await page.getByLabel(/A quench token/).fill(token);
    await page.getByRole("button", { name: "Sign in with token" }).click();
    await expect.poll(() => page.locator("#workspace").isVisible(), { timeout: 10_000 }).toBe(true);
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem("quench.session") ?? "",
      local: JSON.stringify(localStorage),
    }));
    expect(stored.session).toContain(token);
    expect(stored.local).not.toContain(token);
    const icon = await page.request.get(`${server.url}/favicon.svg`);
    expect(icon.status()).toBe(200);
    expect(icon.headers()["content-type"]).toContain("image/svg+xml");
    expect(await page.locator('link[rel="icon"]').getAttribute("href")).toBe("/favicon.svg");
    await context.close();
  });

  it("a second wallet sees none of the first wallet's jobs", async () => {
    const { context: firstContext, page: firstPage } = await signedIn();
    await firstPage.getByRole("button", { name: "Run demo job" }).click();
    await expect.poll(() => firstPage.locator("li.job").count(), { timeout: 15_000 }).toBe(1);
    const firstJob = await firstPage.locator("li.job").first().getAttribute("data-job-id");

    const { context: secondContext, page: secondPage } = await signedIn();
    // The list has loaded once "no jobs" shows; the poll that follows must not bring the first wallet's job.
    await expect
      .poll(() => secondPage.locator("#empty").isVisible(), { timeout: 15_000 })
      .toBe(true);
    await secondPage.waitForResponse((r) => r.url().includes("/api/v1/jobs?"), { timeout: 15_000 });
    expect(await secondPage.locator(`li.job[data-job-id="${firstJob}"]`).count()).toBe(0);
    expect(await secondPage.locator("li.job").count()).toBe(0);

    await cancelNewest(firstPage);
    await firstContext.close();
    await secondContext.close();
  });

  it("is readable on a phone: nothing wider than the screen", async () => {
    const { context, page } = await signedIn({ width: 390, height: 844 });
    await page.getByRole("button", { name: "Run demo job" }).click();
    await expect
      .poll(() => page.locator("li.job").first().getAttribute("data-status"), { timeout: 15_000 })
      .toBe("running");
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - window.innerWidth,
    );
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-phone.png"), fullPage: true });
    await cancelNewest(page);
    await context.close();
  });

  it("shows why a job's execution failed", async () => {
    const { context, page } = await signedIn();
    const job = await (await clientOf(page)).submit({
      executions: [{ key: "gpu", provider: "broken", model: "m", input: {}, retries: 0 }],
    });
    const card = page.locator(`li.job[data-job-id="${job.id}"]`);
    await expect.poll(() => card.getAttribute("data-status"), { timeout: 15_000 }).toBe("failed");
    await expect
      .poll(() => card.locator(".execution").textContent())
      .toMatch(/^gpu · broken\/m · failed · \d+ chars · connection_failed: /);
    expect(await card.locator("button[data-action=cancel]").count()).toBe(0);
    await context.close();
  });

  it("without a browser wallet, says so instead of failing", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url);
    await expect
      .poll(() => page.locator("#signin-note").textContent())
      .toBe("No browser wallet detected: install one to sign in.");
    await context.close();
  });

  // Last: it stops the server.
  it("when the server goes away, a lasting banner says so and Cancel waits; no toast per retry", async () => {
    const { context, page } = await signedIn();
    await page.getByLabel("Prompt for a demo job").fill("outlive the server");
    await page.getByRole("button", { name: "Run demo job" }).click();
    const card = page.locator("li.job").first();
    await expect
      .poll(() => card.getAttribute("data-status"), { timeout: 15_000 })
      .toMatch(/queued|running/);
    // Every toast shown, even one that has faded since.
    await page.evaluate(() => {
      const shown: string[] = [];
      (window as unknown as { toasts: string[] }).toasts = shown;
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) shown.push(n.textContent ?? "");
      }).observe(document.getElementById("toasts") as HTMLElement, { childList: true });
    });
    let failedPolls = 0;
    page.on("requestfailed", (r) => {
      if (r.url().includes("/api/v1/jobs?")) failedPolls++;
    });
    await server.stop();
    await expect.poll(() => failedPolls, { timeout: 20_000 }).toBeGreaterThanOrEqual(3);
    expect(await page.locator("#offline").isVisible()).toBe(true);
    expect(await page.locator("#offline").textContent()).toContain("Cannot reach quench");
    expect(await card.locator("button[data-action=cancel]").isDisabled()).toBe(true);
    const shown = await page.evaluate(() => (window as unknown as { toasts: string[] }).toasts);
    expect(shown.filter((t) => /reach/i.test(t))).toEqual([]);
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-offline.png"), fullPage: true });
    await context.close();
  });
});
