import type { ServerResponse } from "node:http";
import { createPublicClient, getAddress, http } from "viem";
import { createSiweMessage } from "viem/siwe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/connection.js";
import { type FakeServer, startFakeServer } from "../fakes/fake-server.js";
import { HOST, newWallet, siweMessage, startApi, type TestApi } from "../helpers/api.js";
import { createTestDatabase } from "../helpers/databases.js";

/** A smart-contract wallet that accepts exactly this signature (ERC-1271 style). */
const CONTRACT = getAddress("0x4e59b44847b379578588920ca78fbf26c0b4956c");
const MAGIC = `0x${"c0ffee".repeat(22)}` as const;
const DEMO = { demo: { kind: "demo" } };

/**
 * A JSON-RPC node on loopback. `eth_call` answers true when the call asks
 * about CONTRACT with MAGIC (what viem's ERC-6492 validator call carries),
 * false otherwise: the contract's verdict, without a chain.
 */
function fakeNode(): Promise<FakeServer> {
  return startFakeServer((_req, res, recorded) => {
    const answer = (one: { id: number; method: string; params: { data?: string }[] }) => {
      if (one.method === "eth_chainId") return { jsonrpc: "2.0", id: one.id, result: "0x1" };
      if (one.method !== "eth_call") {
        return { jsonrpc: "2.0", id: one.id, error: { code: -32601, message: "not here" } };
      }
      const data = (one.params[0]?.data ?? "").toLowerCase();
      const valid = data.includes(CONTRACT.slice(2).toLowerCase()) && data.includes(MAGIC.slice(2));
      return { jsonrpc: "2.0", id: one.id, result: `0x${(valid ? "1" : "0").padStart(64, "0")}` };
    };
    const body = recorded.body as Parameters<typeof answer>[0] | Parameters<typeof answer>[0][];
    send(res, Array.isArray(body) ? body.map(answer) : answer(body));
  });
}

const nonceFrom = async (api: TestApi) =>
  ((await (await api.call("GET", "/api/v1/auth/nonce")).json()) as { nonce: string }).nonce;

/** A SIWE message signing in as CONTRACT, with a fresh nonce from `api`. */
const contractMessageFor = async (api: TestApi) =>
  createSiweMessage({
    address: CONTRACT,
    chainId: 1,
    domain: HOST,
    nonce: await nonceFrom(api),
    uri: `https://${HOST}/`,
    version: "1",
    issuedAt: new Date(),
  });

function send(res: ServerResponse, body: unknown) {
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
}

describe("SIWE with RPC_URL: contract wallets through the node, EOAs offline", () => {
  let database: Database;
  let drop: () => Promise<void>;
  let node: FakeServer;
  let api: TestApi;
  beforeAll(async () => {
    const t = await createTestDatabase("pglite");
    database = t.database;
    drop = t.drop;
    node = await fakeNode();
    api = await startApi(database, DEMO, {
      publicClient: createPublicClient({ transport: http(node.url) }),
    });
  });
  afterAll(async () => {
    await api?.close();
    await node?.close();
    await drop?.();
  });

  const nonce = () => nonceFrom(api);
  const contractMessage = () => contractMessageFor(api);

  it("verifies an EOA offline: the node is never asked", async () => {
    const before = node.requests.length;
    const wallet = newWallet();
    const res = await api.call("POST", "/api/v1/auth/siwe", {
      body: await siweMessage(wallet, await nonce()),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { address: string }).address).toBe(wallet.address);
    expect(node.requests.length).toBe(before);
  });

  it("signs in a contract wallet whose contract accepts the signature", async () => {
    const res = await api.call("POST", "/api/v1/auth/siwe", {
      body: { message: await contractMessage(), signature: MAGIC },
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { address: string }).address).toBe(CONTRACT);
    expect(node.requests.length).toBeGreaterThan(0);
  });

  it("refuses a signature the contract rejects, as bad_signature", async () => {
    const res = await api.call("POST", "/api/v1/auth/siwe", {
      body: { message: await contractMessage(), signature: `0x${"ab".repeat(66)}` },
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({
      error: { code: "unauthenticated", reason: "bad_signature" },
    });
  });
});

describe("SIWE with RPC_URL down", () => {
  it("answers 503 unavailable for a contract wallet, not a false bad_signature; EOAs still sign in", async () => {
    const t = await createTestDatabase("pglite");
    const gone = await startFakeServer(() => {});
    await gone.close();
    const api = await startApi(t.database, DEMO, {
      publicClient: createPublicClient({
        transport: http(gone.url, { retryCount: 0, timeout: 2_000 }),
      }),
    });
    try {
      const res = await api.call("POST", "/api/v1/auth/siwe", {
        body: { message: await contractMessageFor(api), signature: MAGIC },
      });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: { code: "unavailable" } });
      const wallet = newWallet();
      const eoa = await api.call("POST", "/api/v1/auth/siwe", {
        body: await siweMessage(wallet, await nonceFrom(api)),
      });
      expect(eoa.status).toBe(200);
    } finally {
      await api.close();
      await t.drop();
    }
  });
});
