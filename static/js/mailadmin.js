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
