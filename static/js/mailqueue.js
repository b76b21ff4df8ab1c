// The queue list: select all on this page, confirmations that name how many messages an action
// touches, and a list that follows the index without undoing what the person is doing.
(() => {
  const actions = () => document.getElementById("queue-actions");
  const boxes = (form) => [...form.querySelectorAll("input[name=id]")];

  document.addEventListener("change", (event) => {
    const form = actions();
    if (!form || !form.contains(event.target)) return;
    if (event.target.id === "select-page") {
      for (const box of boxes(form)) box.checked = event.target.checked;
    } else if (event.target.name === "id") {
      const all = document.getElementById("select-page");
      if (all) all.checked = boxes(form).every((box) => box.checked);
    }
  });

  // Delete always asks; any action on "all N matching" asks too; both say how many messages.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const button = event.submitter;
    // getAttribute: the forms hold inputs named "id", which form.id would return instead.
    const formId = form.getAttribute("id");
    if (formId === "message-actions" && button && "alwaysConfirm" in button.dataset) {
      const queueId = form.querySelector("input[name=id]").value;
      if (!window.confirm(`${button.dataset.verbText} message ${queueId}?`)) event.preventDefault();
      return;
    }
    if (formId !== "queue-actions") return;
    const matching = form.querySelector("input[name=scope][value=matching]")?.checked;
    const count = matching ? Number(form.dataset.total) : boxes(form).filter((box) => box.checked).length;
    if (!button || !(matching || "alwaysConfirm" in button.dataset)) return;
    const noun = count === 1 ? "message" : "messages";
    const which = matching ? `all ${count} matching ${noun}` : `the ${count} ticked ${noun}`;
    if (!window.confirm(`${button.dataset.verbText} ${which}?`)) event.preventDefault();
  });

  // The freshness line tells the page the index changed (event queue-changed); the list is then
  // fetched again, unless that would drop ticks or an action being typed: then a note says so.
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (event.target.id !== "queue-results") return;
    const form = actions();
    const busy =
      form &&
      (boxes(form).some((box) => box.checked) ||
        [...form.querySelectorAll("input[type=text]")].some((input) => input.value) ||
        form.contains(document.activeElement));
    if (busy) {
      event.preventDefault();
      document.getElementById("queue-stale")?.classList.remove("d-none");
    }
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.requestConfig?.elt?.id === "queue-results") {
      document.getElementById("queue-stale")?.classList.add("d-none");
    }
  });
})();
