import fc from "fast-check";
import { getAddress, toHex } from "viem";
import { createSiweMessage } from "viem/siwe";
import { describe, expect, it } from "vitest";
import { parseSiweMessage, SiweSyntaxError } from "../../src/api/auth/siwe-message.js";
import { type SiweLines, siweText } from "../helpers/siwe-text.js";

/** The example message of EIP-4361's text (its "Example message" section). */
const EIP_EXAMPLE: SiweLines = {
  domain: "example.com",
  address: "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
  statement: "I accept the ExampleOrg Terms of Service: https://example.com/tos",
  uri: "https://example.com/login",
  version: "1",
  chainId: "1",
  nonce: "32891756",
  issuedAt: "2021-09-30T16:25:24Z",
  resources: [
    "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
    "https://example.com/my-web2-claim.json",
  ],
};

function refuses(message: string): void {
  expect(() => parseSiweMessage(message), JSON.stringify(message)).toThrow(SiweSyntaxError);
}

describe("EIP-4361 grammar: vectors from the EIP's text", () => {
  it("parses the EIP's example message field by field", () => {
    const m = parseSiweMessage(siweText(EIP_EXAMPLE));
    expect(m).toMatchObject({
      domain: "example.com",
      address: EIP_EXAMPLE.address,
      statement: EIP_EXAMPLE.statement,
      uri: EIP_EXAMPLE.uri,
      version: "1",
      chainId: 1,
      nonce: "32891756",
      resources: EIP_EXAMPLE.resources,
    });
    expect(m.issuedAt.toISOString()).toBe("2021-09-30T16:25:24.000Z");
  });

  it("accepts every optional field in the EIP's order, a scheme, an IPv6 host and no statement", () => {
    const m = parseSiweMessage(
      siweText({
        ...EIP_EXAMPLE,
        scheme: "https",
        domain: "[::1]:8080",
        statement: undefined,
        expirationTime: "2021-10-01T16:25:24+02:00",
        notBefore: "2021-09-30t16:25:24.123456z",
        requestId: "req-1:@x",
      }),
    );
    expect(m.scheme).toBe("https");
    expect(m.domain).toBe("[::1]:8080");
    expect(m.statement).toBeUndefined();
    expect(m.expirationTime?.toISOString()).toBe("2021-10-01T14:25:24.000Z");
    expect(m.notBefore?.toISOString()).toBe("2021-09-30T16:25:24.123Z");
    expect(m.requestId).toBe("req-1:@x");
  });

  it("refuses each class of message the EIP forbids", () => {
    const ok = { ...EIP_EXAMPLE, expirationTime: "2000-01-01T00:00:00Z" };
    const forbidden: Record<string, string> = {
      "expiration after not-before": siweText({ ...ok, notBefore: "1999-01-01T00:00:00Z" }, [
        "notBefore",
        "expirationTime",
      ]),
      "expiration after request id": siweText({ ...ok, requestId: "r1" }, [
        "requestId",
        "expirationTime",
      ]),
      "a JavaScript date string": siweText({
        ...ok,
        expirationTime: "Wed Oct 05 2011 16:48:00 GMT+0200",
      }),
      "30 February": siweText({ ...ok, expirationTime: "2100-02-30T10:00:00Z" }),
      "31 February": siweText({ ...ok, expirationTime: "2100-02-31T10:00:00Z" }),
      "29 February of a common year": siweText({ ...ok, issuedAt: "2100-02-29T10:00:00Z" }),
      "month 13": siweText({ ...ok, issuedAt: "2021-13-01T10:00:00Z" }),
      "hour 24": siweText({ ...ok, issuedAt: "2021-01-01T24:00:00Z" }),
      "a leap second JavaScript cannot hold": siweText({ ...ok, issuedAt: "2016-12-31T23:59:60Z" }),
      "no time zone": siweText({ ...ok, issuedAt: "2021-01-01T10:00:00" }),
      "a date without a time": siweText({ ...ok, issuedAt: "2021-01-01" }),
      "version 3": siweText({ ...ok, version: "3" }),
      "a lower-case address": siweText({ ...ok, address: ok.address.toLowerCase() }),
      "a wrong checksum": siweText({ ...ok, address: ok.address.replace("aaA", "aAA") }),
      "a short address": siweText({ ...ok, address: ok.address.slice(0, 40) }),
      "a statement with a line break": siweText({ ...ok, statement: "one\ntwo" }),
      "a URI with a space": siweText({ ...ok, uri: "https://example.com/a b" }),
      "a URI without a scheme": siweText({ ...ok, uri: "//example.com/" }),
      "a resource that is no URI": siweText({
        ...ok,
        resources: ["https://ok.test/", "not a uri"],
      }),
      "two resources on one line": siweText({
        ...ok,
        resources: ["https://a.test/ - https://b.test/"],
      }),
      "a resource without its dash": siweText(ok).replace("- ipfs://", "ipfs://"),
      "a nonce of 7 characters": siweText({ ...ok, nonce: "abc1234" }),
      "a non-numeric chain id": siweText({ ...ok, chainId: "0x1" }),
      "CRLF line ends": siweText(ok).replaceAll("\n", "\r\n"),
      "a trailing line break": `${siweText(ok)}\n`,
      "an unknown field": siweText({ ...ok, resources: undefined }).concat("\nColor: blue"),
      "no Issued At": siweText(ok).replace(/\nIssued At: [^\n]*/, ""),
      "an empty message": "",
    };
    for (const message of Object.values(forbidden)) refuses(message);
  });
});

// ---- properties: valid messages round-trip; a single forbidden change is refused ----

const pchar = fc.constantFrom(..."abcXYZ019-._~!$&'()*+,;=:@".split(""), "%20", "%7E");
const statementChar = fc.constantFrom(..."abcxyzABCXYZ0189 !#$&'()*+,-./:;=?@[]_~".split(""));
const instant = fc
  .date({
    min: new Date("1970-01-01T00:00:00Z"),
    max: new Date("9999-12-31T23:59:59Z"),
    noInvalidDate: true,
  })
  .chain((d) =>
    fc.constantFrom(
      d.toISOString(),
      d.toISOString().replace(/\.\d{3}Z$/, "Z"),
      // The same instant at a numeric offset (RFC 3339 time-numoffset).
      ((): string => {
        const shifted = new Date(d.getTime() + 5.5 * 3600_000);
        return shifted.toISOString().replace("Z", "+05:30");
      })(),
    ),
  )
  .filter((s) => /^\d{4}-/.test(s));

const validFields: fc.Arbitrary<SiweLines> = fc.record(
  {
    scheme: fc.constantFrom("https", "http", "app+x"),
    domain: fc.oneof(
      fc.domain(),
      fc.tuple(fc.domain(), fc.integer({ min: 1, max: 65535 })).map(([d, p]) => `${d}:${p}`),
      fc.ipV4(),
      fc.ipV6().map((ip) => `[${ip}]:8080`),
    ),
    address: fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => getAddress(toHex(b))),
    statement: fc.array(statementChar, { minLength: 1, maxLength: 60 }).map((c) => c.join("")),
    uri: fc.webUrl({ withQueryParameters: true, withFragments: true }),
    version: fc.constant("1"),
    chainId: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }).map(String),
    nonce: fc.stringMatching(/^[a-zA-Z0-9]{8,40}$/),
    issuedAt: instant,
    expirationTime: instant,
    notBefore: instant,
    requestId: fc.array(pchar, { maxLength: 20 }).map((c) => c.join("")),
    resources: fc.array(fc.webUrl({ withQueryParameters: true }), { maxLength: 4 }),
  },
  {
    requiredKeys: ["domain", "address", "uri", "version", "chainId", "nonce", "issuedAt"],
  },
);

describe("EIP-4361 grammar: properties", () => {
  it("every valid message parses back to its fields", () => {
    fc.assert(
      fc.property(validFields, (f) => {
        const m = parseSiweMessage(siweText(f));
        expect(m.scheme).toBe(f.scheme);
        expect(m.domain).toBe(f.domain);
        expect(m.address).toBe(f.address);
        expect(m.statement).toBe(f.statement);
        expect(m.uri).toBe(f.uri);
        expect(m.chainId).toBe(Number(f.chainId));
        expect(m.nonce).toBe(f.nonce);
        expect(m.issuedAt.getTime()).toBe(Date.parse(f.issuedAt));
        expect(m.expirationTime?.getTime()).toBe(f.expirationTime && Date.parse(f.expirationTime));
        expect(m.notBefore?.getTime()).toBe(f.notBefore && Date.parse(f.notBefore));
        expect(m.requestId).toBe(f.requestId);
        expect(m.resources).toEqual(f.resources);
      }),
      { numRuns: 300 },
    );
  });

  it("what viem's createSiweMessage writes parses too (the client and dashboard sign it)", () => {
    fc.assert(
      fc.property(validFields, (f) => {
        if (f.domain.startsWith("[")) return; // viem refuses IPv6 hosts
        const text = createSiweMessage({
          ...(f.scheme === undefined ? {} : { scheme: f.scheme }),
          domain: f.domain,
          address: f.address as `0x${string}`,
          ...(f.statement === undefined ? {} : { statement: f.statement }),
          uri: f.uri,
          version: "1",
          chainId: Number(f.chainId),
          nonce: f.nonce,
          issuedAt: new Date(f.issuedAt),
          ...(f.expirationTime === undefined ? {} : { expirationTime: new Date(f.expirationTime) }),
        });
        expect(parseSiweMessage(text).nonce).toBe(f.nonce);
      }),
      { numRuns: 100 },
    );
  });

  type Mutation = (f: SiweLines) => string | undefined;
  const mutations: Record<string, Mutation> = {
    "two optional fields swapped": (f) => {
      const present = (["expirationTime", "notBefore", "requestId"] as const).filter(
        (k) => f[k] !== undefined,
      );
      if (present.length < 2) return undefined;
      const [a, b] = present;
      return siweText(f, [b as keyof SiweLines, a as keyof SiweLines]);
    },
    "a version other than 1": (f) => siweText({ ...f, version: "2" }),
    "the address in lower case": (f) =>
      f.address === f.address.toLowerCase()
        ? undefined
        : siweText({ ...f, address: f.address.toLowerCase() }),
    "a line break in the statement": (f) =>
      f.statement === undefined || f.statement.length < 2
        ? undefined
        : siweText({ ...f, statement: `${f.statement.slice(0, 1)}\n${f.statement.slice(1)}` }),
    "an impossible day": (f) =>
      siweText({ ...f, issuedAt: f.issuedAt.replace(/^(\d{4})-\d\d-\d\d/, "$1-02-30") }),
    "a month 13": (f) => siweText({ ...f, issuedAt: f.issuedAt.replace(/^(\d{4})-\d\d/, "$1-13") }),
    "an expiry in JavaScript's format": (f) =>
      siweText({ ...f, expirationTime: new Date(f.issuedAt).toString() }),
    "a space in the URI": (f) => siweText({ ...f, uri: f.uri.replace("//", "//a b") }),
    "a resource without its dash": (f) =>
      f.resources === undefined || f.resources.length === 0
        ? undefined
        : siweText(f).replace(/\n- /, "\n"),
    "CRLF line ends": (f) => siweText(f).replaceAll("\n", "\r\n"),
    "a trailing line break": (f) => `${siweText(f)}\n`,
  };

  it("one forbidden change to a valid message makes it refused", () => {
    fc.assert(
      fc.property(validFields, fc.constantFrom(...Object.keys(mutations)), (f, name) => {
        const mutated = mutations[name]?.(f);
        if (mutated === undefined) return;
        refuses(mutated);
      }),
      { numRuns: 500 },
    );
  });
});
