/** Shapes that are credentials wherever they appear. */
const CREDENTIAL_SHAPES: [string, RegExp][] = [
  ["a JWT", /eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{16,}/],
  ["a bearer header", /Bearer\s+[\w.~+/-]{8,}/i],
  ["an Ethereum signature or private key", /0x[0-9a-fA-F]{64}(?![0-9a-fA-F])|0x[0-9a-fA-F]{130}/],
];

export interface Leak {
  file: string;
  line: number;
  what: string;
}

/** The lines of `text` that hold a credential shape or one of `secrets`. */
export function findLeaks(file: string, text: string, secrets: readonly string[]): Leak[] {
  const leaks: Leak[] = [];
  text.split("\n").forEach((line, i) => {
    for (const [what, shape] of CREDENTIAL_SHAPES) {
      if (shape.test(line)) leaks.push({ file, line: i + 1, what });
    }
    for (const secret of secrets) {
      if (line.includes(secret)) leaks.push({ file, line: i + 1, what: "a secret a test made" });
    }
  });
  return leaks;
}
