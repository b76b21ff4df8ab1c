"""The Content Security Policy as a browser enforces it: what a page reports as blocked, and what a
policy header allows that it should not."""

from __future__ import annotations

# Runs in every document before its own scripts (Playwright injects it through the DevTools
# protocol, which the page's CSP does not govern) and reports each violation the page sees.
_REPORTER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} at ${event.sourceFile}:${event.lineNumber}`
    + (event.sample ? ` (${event.sample})` : "")
  );
});
"""


def watch_violations(page) -> list[str]:
    """A list that fills with every CSP violation `page` meets from now on, on every page it loads:
    the securitypolicyviolation events and Chromium's own "Refused to ..." console messages."""
    seen: list[str] = []
    page.expose_function("reportCspViolation", lambda text: seen.append(text))
    page.add_init_script(_REPORTER)
    page.on("console", lambda message: seen.append(message.text) if "Content Security Policy" in message.text else None)
    return seen


def directives(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: [sources]}."""
    parsed = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            parsed[words[0].lower()] = words[1:]
    return parsed


def unsafe_sources(header: str) -> list[str]:
    """What in the policy would let inline code, inline style or eval run."""
    unsafe = {"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "'wasm-unsafe-eval'", "data:", "*"}
    found = []
    for directive, sources in directives(header).items():
        if directive in {"default-src", "script-src", "script-src-elem", "script-src-attr", "style-src"} or (
            directive.startswith("style-src-")
        ):
            found += [f"{directive} {source}" for source in sources if source.lower() in unsafe]
    return found
