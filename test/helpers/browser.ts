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
  behaviour: {
    /** The chain the wallet starts on (1 unless said). */
    chainId?: number;
    /** Refuse every signature as a person pressing Reject would (EIP-1193 code 4001). */
    rejectSignatures?: boolean;
  } = {},
): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport });
  await context.exposeBinding("__walletSign", (_source, hex: `0x${string}`) =>
    account.signMessage({ message: { raw: hex } }),
  );
  await context.addInitScript(
    ({ address, chainId, reject }: { address: string; chainId: number; reject: boolean }) => {
      const sign = (window as unknown as { __walletSign(hex: string): Promise<string> })
        .__walletSign;
      let chain = chainId;
      const w = window as unknown as { ethereum: unknown; walletCalls: string[] };
      w.walletCalls = [];
      w.ethereum = {
        async request({ method, params }: { method: string; params?: unknown[] }) {
          w.walletCalls.push(method);
          switch (method) {
            case "eth_requestAccounts":
            case "eth_accounts":
              return [address];
            case "eth_chainId":
              return `0x${chain.toString(16)}`;
            case "wallet_switchEthereumChain":
              chain = Number.parseInt(
                String((params?.[0] as { chainId?: string } | undefined)?.chainId),
                16,
              );
              return null;
            case "personal_sign":
              if (reject) {
                throw Object.assign(new Error("User rejected the request. Details: viem@2.x"), {
                  code: 4001,
                });
              }
              return sign(String(params?.[0]));
            default:
              throw Object.assign(new Error(`unsupported method ${method}`), { code: 4200 });
          }
        },
        on() {},
        removeListener() {},
      };
    },
    {
      address: account.address,
      chainId: behaviour.chainId ?? 1,
      reject: behaviour.rejectSignatures ?? false,
    },
  );
  return context;
}
