/** The dashboard's HTML shell; browser/app.ts fills it in. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>quench</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/dashboard.css">
<script type="module" src="/dashboard.js"></script>
</head>
<body>
<header>
  <h1>quench</h1>
  <div id="account"></div>
</header>
<div id="offline" class="banner" role="alert" hidden>Cannot reach quench: retrying every few seconds. Cancel waits until it is back.</div>
<main>
  <section id="signin" hidden>
    <p>Sign in with your browser wallet to run jobs and stop them.</p>
    <button id="signin-button" type="button">Sign in with wallet</button>
    <p id="signin-note" class="note"></p>
    <details id="token-signin">
      <summary>No wallet? Sign in with a token</summary>
      <form id="token-form">
        <label for="token">A quench token (<code>quench token</code> mints one; or ask your operator)</label>
        <input id="token" type="password" autocomplete="off" spellcheck="false" required>
        <button id="token-button" type="submit">Sign in with token</button>
        <p class="note">Kept only in this tab (sessionStorage), never sent anywhere but this server.</p>
      </form>
    </details>
  </section>
  <section id="workspace" hidden>
    <form id="submit-form">
      <label for="prompt">Prompt for a demo job</label>
      <textarea id="prompt" rows="2" maxlength="2000">Tell me how fast quench stops GPU work.</textarea>
      <button id="submit-button" type="submit">Run demo job</button>
    </form>
    <h2>Your jobs</h2>
    <p id="empty" class="note" hidden>No jobs yet: run a demo job above.</p>
    <ul id="jobs"></ul>
  </section>
</main>
<dialog id="confirm">
  <form method="dialog">
    <p id="confirm-text"></p>
    <div class="actions">
      <button value="keep" type="submit">Keep running</button>
      <button value="cancel" type="submit" class="danger">Cancel job</button>
    </div>
  </form>
</dialog>
<div id="toasts" role="status" aria-live="polite"></div>
</body>
</html>
`;

export const DASHBOARD_CSS = `
:root { color-scheme: light dark; --accent: #d9480f; --muted: #868e96; --line: #8883; font-family: system-ui, sans-serif; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 760px; padding: 0 12px 48px; line-height: 1.4; }
header { display: flex; align-items: center; justify-content: space-between; gap: 8px; padding: 12px 0; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.4rem; margin: 0; color: var(--accent); }
h2 { font-size: 1.1rem; margin: 20px 0 8px; }
button { font: inherit; padding: 8px 14px; border-radius: 8px; border: 1px solid var(--line); background: Canvas; color: CanvasText; cursor: pointer; min-height: 40px; }
button:disabled { opacity: .6; cursor: progress; }
button.primary, #submit-button, #signin-button { background: var(--accent); color: white; border-color: var(--accent); }
button.danger { border-color: #c92a2a; color: #c92a2a; }
.queue { font-size: .85em; opacity: .75; }
.banner { position: sticky; top: 0; z-index: 1; margin: 8px 0; padding: 10px 14px; border-radius: 8px; background: #c92a2a; color: white; }
#token-signin { margin-top: 16px; }
#token-form { display: grid; gap: 8px; margin-top: 8px; }
#token-form input { font: inherit; padding: 8px; border-radius: 8px; border: 1px solid var(--line); background: Canvas; color: CanvasText; }
.toast { display: flex; gap: 10px; align-items: flex-start; }
.toast button { min-height: 0; padding: 0 6px; border: 0; background: transparent; color: inherit; font-size: 1.1em; line-height: 1; }
.progress { display: flex; gap: .5em; align-items: center; font-size: .85em; }
.progress progress { flex: 0 1 12em; min-width: 4em; }
form#submit-form { display: grid; gap: 8px; margin-top: 16px; }
textarea { font: inherit; width: 100%; padding: 8px; border-radius: 8px; border: 1px solid var(--line); background: Canvas; color: CanvasText; }
.note { color: var(--muted); font-size: .9rem; }
#account { display: flex; align-items: center; gap: 8px; font-family: ui-monospace, monospace; font-size: .85rem; }
ul#jobs { list-style: none; padding: 0; margin: 0; display: grid; gap: 10px; }
li.job { border: 1px solid var(--line); border-radius: 10px; padding: 10px 12px; display: grid; gap: 6px; }
.job-head { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; }
.job-head .actions { margin-left: auto; min-width: 7.5em; display: flex; justify-content: flex-end; }
.job-id { font-family: ui-monospace, monospace; font-size: .85rem; overflow-wrap: anywhere; }
.status { font-size: .8rem; font-weight: 600; padding: 2px 8px; border-radius: 999px; background: #8882; }
.status-running { background: #1c7ed633; } .status-queued { background: #fab00533; }
.status-completed { background: #2f9e4433; } .status-cancelled, .status-failed, .status-timed_out, .status-partial { background: #e0313133; }
.execution { font-size: .85rem; color: var(--muted); overflow-wrap: anywhere; }
.output { font-size: .85rem; line-height: 1.4; white-space: pre-wrap; overflow-wrap: anywhere; max-height: calc(1.4em * 6); overflow-y: auto; margin: 0; }
.stop-time { font-size: .85rem; font-weight: 600; }
.job-meta { margin: 0; font-size: .8rem; color: var(--muted); }
.prompt { margin: 0; font-size: .9rem; overflow-wrap: anywhere; }
#toasts { position: fixed; bottom: 12px; left: 12px; right: 12px; display: grid; gap: 6px; justify-items: center; pointer-events: none; }
.toast { max-width: min(560px, 100%); overflow-wrap: anywhere; padding: 10px 14px; border-radius: 8px; background: #212529; color: #f8f9fa; box-shadow: 0 2px 10px #0004; pointer-events: auto; }
.toast.error { background: #c92a2a; }
dialog { border: 1px solid var(--line); border-radius: 12px; max-width: min(92vw, 420px); }
dialog .actions { display: flex; gap: 8px; justify-content: flex-end; flex-wrap: wrap; }
`;

/** A stop square in quench's orange: the tab says what the page is for. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#d9480f"/><rect x="10" y="10" width="12" height="12" rx="2" fill="#fff"/></svg>`;
