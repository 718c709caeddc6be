type Child = Node | string | null | undefined | false;

/**
 * Builds an element. Text always goes in as text nodes, never as HTML:
 * provider output and job metadata are untrusted.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el as T;
}

const TOAST_MS = 6_000;

/** A short message at the bottom of the screen, with × to dismiss it; errors stay a little longer. */
export function toast(message: string, kind: "info" | "error" = "info"): void {
  const close = h("button", { type: "button", "aria-label": "Dismiss", title: "Dismiss" }, "×");
  const el = h(
    "div",
    { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", {}, message),
    close,
  );
  close.addEventListener("click", () => el.remove());
  byId("toasts").append(el);
  setTimeout(() => el.remove(), kind === "error" ? TOAST_MS * 1.5 : TOAST_MS);
}

/** Asks for confirmation in the page's <dialog>; resolves true when the user confirms. */
export function confirmDialog(text: string): Promise<boolean> {
  const dialog = byId<HTMLDialogElement>("confirm");
  byId("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) =>
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "cancel"), {
      once: true,
    }),
  );
}
