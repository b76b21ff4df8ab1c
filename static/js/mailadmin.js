// Forms carrying data-confirm ask before they submit (stopping or restarting a daemon).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});

// Log tails read top to bottom, newest last: open them scrolled to the end.
document.addEventListener("DOMContentLoaded", () => {
  for (const tail of document.querySelectorAll("pre.log-tail")) {
    tail.scrollTop = tail.scrollHeight;
  }
});

// Progress bars carry their percentage in data-progress: the CSP forbids style="width: N%", but a
// same-origin script may set element.style. On the page as parsed, and on every element added
// later (a progress poll swaps its card in every second): a MutationObserver runs before the new
// bar is first drawn, so it appears at its width instead of growing again from nothing.
function showProgress(root) {
  const bars = [...root.querySelectorAll("[data-progress]")];
  if (root.matches("[data-progress]")) bars.push(root);
  for (const bar of bars) {
    bar.style.width = `${Math.min(100, Math.max(0, Number(bar.dataset.progress) || 0))}%`;
  }
}
showProgress(document.documentElement);
new MutationObserver((changes) => {
  for (const change of changes) {
    for (const node of change.addedNodes) {
      if (node.nodeType === Node.ELEMENT_NODE) showProgress(node);
    }
  }
}).observe(document.documentElement, { childList: true, subtree: true });
