import { existsSync } from "node:fs";
import { type Browser, type BrowserContext, chromium } from "playwright-core";
import type { LocalAccount } from "viem";

export const CHROMIUM = "/usr/bin/chromium";
export const HAVE_CHROMIUM = existsSync(CHROMIUM);

/** Debian's Chromium, headless, with nothing reaching beyond loopback. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A browser context whose pages have an EIP-1193 wallet at `window.ethereum`
 * that signs with `account` (a viem local account, in this process): the
 * real signatures a browser wallet would make, without a wallet extension.
 */
export async function contextWithWallet(
  browser: Browser,
  account: LocalAccount,
  viewport = { width: 1100, height: 900 },
): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport });
  await context.exposeBinding("__walletSign", (_source, hex: `0x${string}`) =>
    account.signMessage({ message: { raw: hex } }),
  );
  await context.addInitScript((address: string) => {
    const sign = (window as unknown as { __walletSign(hex: string): Promise<string> }).__walletSign;
    (window as unknown as { ethereum: unknown }).ethereum = {
      async request({ method, params }: { method: string; params?: unknown[] }) {
        switch (method) {
          case "eth_requestAccounts":
          case "eth_accounts":
            return [address];
          case "eth_chainId":
            return "0x1";
          case "personal_sign":
            return sign(String(params?.[0]));
          default:
            throw Object.assign(new Error(`unsupported method ${method}`), { code: 4200 });
        }
      },
      on() {},
      removeListener() {},
    };
  }, account.address);
  return context;
}
