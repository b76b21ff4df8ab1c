// The configuration page's filter box: narrows the options and FEATUREs to those whose name, cf
// name, group or help text (each row's data-filter) holds every word typed, as you type. The
// text rides along with every Set/Save (the forms' hidden "filter" fields) and stays in the
// address bar, so the page comes back filtered the same way. Without JavaScript the box stays
// hidden and every row is shown.
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.getElementById("config-filter");
  const input = document.getElementById("config-filter-input");
  const count = document.getElementById("config-filter-count");
  if (!bar || !input) return;
  const rows = [...document.querySelectorAll("[data-filter]")];
  const groups = [...document.querySelectorAll("[data-filter-group]")];
  for (const row of rows) row.dataset.filterText = row.dataset.filter.toLowerCase();

  function apply() {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of rows) {
      const matches = words.every((word) => row.dataset.filterText.includes(word));
      row.hidden = !matches;
      if (matches) shown += 1;
    }
    for (const group of groups) {
      group.hidden = !group.querySelector("[data-filter]:not([hidden])");
    }
    for (const carried of document.querySelectorAll("input[type=hidden][name=filter]")) {
      carried.value = input.value.trim();
    }
    if (!words.length) {
      count.textContent = "";
    } else if (shown) {
      count.textContent = `${shown} of ${rows.length} options and FEATUREs match.`;
    } else {
      count.textContent = "No option or FEATURE matches. Clear the box to see them all.";
    }
    const url = new URL(window.location.href);
    if (words.length) url.searchParams.set("filter", input.value.trim());
    else url.searchParams.delete("filter");
    window.history.replaceState(null, "", url);
  }

  // Back at the row a Set/Save came from (the URL's fragment): keep it clear of the sticky filter
  // box (scroll-margin, which the browser's own jump to the fragment at load honours too), bring
  // it into view now that rows above it may be filtered away, and put the outcome message beside
  // it, where the administrator is looking, instead of thousands of pixels up.
  function returnToTarget() {
    const id = decodeURIComponent(window.location.hash.slice(1));
    const target = id && document.getElementById(id);
    if (!target) return;
    const messages = document.querySelector("main .messages");
    const cell = target.querySelector("td");
    if (messages && cell) cell.append(messages);
    // At once: Bootstrap makes scrolling smooth, which would animate thousands of pixels.
    target.scrollIntoView({ block: "start", behavior: "instant" });
  }

  bar.hidden = false;
  for (const row of rows) row.style.scrollMarginTop = `${bar.offsetHeight + 8}px`;
  input.addEventListener("input", apply);
  apply();
  returnToTarget();
});
