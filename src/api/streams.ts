/**
 * The SSE streams open on this instance, so shutdown can end them (SPEC.md
 * section 5: "SSE streams close"). Each stream registers a close function and
 * removes it when it ends.
 */
export interface StreamRegistry {
  add(close: () => void): () => void;
  closeAll(): void;
  size(): number;
}

export function createStreamRegistry(): StreamRegistry {
  const open = new Set<() => void>();
  return {
    add(close) {
      open.add(close);
      return () => open.delete(close);
    },
    closeAll() {
      for (const close of [...open]) close();
    },
    size: () => open.size,
  };
}
