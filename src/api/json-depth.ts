/** SPEC.md section 3: JSON nested deeper than this anywhere in a body is refused. */
export const MAX_JSON_DEPTH = 256;

/**
 * True when the JSON text nests arrays and objects deeper than `max`. One
 * pass over the text, no recursion and no parse, so it runs before anything
 * recursive (JSON.parse's result walked by zod, the store's sanitiser) can
 * overflow the stack on hostile input. Brackets inside strings do not count;
 * the text need not be valid JSON (the parse that follows judges that).
 */
export function nestedDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c /* \ */) i++;
      else if (ch === 0x22 /* " */) inString = false;
    } else if (ch === 0x22) {
      inString = true;
    } else if (ch === 0x7b /* { */ || ch === 0x5b /* [ */) {
      if (++depth > max) return true;
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      depth--;
    }
  }
  return false;
}
