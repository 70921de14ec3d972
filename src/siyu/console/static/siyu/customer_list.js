/* Customer list: row selection, "all matching the filter", picker counts. Plain JS, no build step.
 * The page works without it (filters are a GET form); this only drives the bulk-tag bar. */
(function () {
  "use strict";

  function $(selector, root) {
    return (root || document).querySelector(selector);
  }

  function $all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }

  var bar = $("#bulk-form");
  var checkAll = $("#check-all");
  var allMatching = $("#all-matching");
  var selectAllMatching = $("#select-all-matching");
  var allMatchingNote = $("#all-matching-note");
  var selectionLabel = $("#selection-label");
  var countEl = $("#selected-count");

  function rowChecks() {
    return $all("#customer-rows .row-check");
  }

  function matchCount() {
    var el = $("#match-count");
    return el ? parseInt(el.getAttribute("data-count"), 10) : NaN;
  }

  function setAllMatching(on) {
    allMatching.value = on ? "1" : "0";
    allMatchingNote.hidden = !on;
    selectionLabel.hidden = on;
  }

  function refresh() {
    if (!bar) return;
    var checks = rowChecks();
    var picked = checks.filter(function (c) { return c.checked; });
    checks.forEach(function (c) { c.closest("tr").classList.toggle("selected", c.checked); });
    if (picked.length < checks.length) setAllMatching(false);
    countEl.textContent = String(picked.length);
    bar.hidden = picked.length === 0;
    checkAll.checked = checks.length > 0 && picked.length === checks.length;
    checkAll.indeterminate = picked.length > 0 && picked.length < checks.length;
    var total = matchCount();
    selectAllMatching.hidden = !(checkAll.checked && allMatching.value !== "1" && (isNaN(total) || total > checks.length));
  }

  if (bar) {
    document.addEventListener("change", function (event) {
      var target = event.target;
      if (target === checkAll) {
        rowChecks().forEach(function (c) { c.checked = checkAll.checked; });
        refresh();
      } else if (target.classList && target.classList.contains("row-check")) {
        refresh();
      }
    });
    selectAllMatching.addEventListener("click", function () {
      setAllMatching(true);
      selectAllMatching.hidden = true;
    });
    $("#clear-selection").addEventListener("click", function () {
      rowChecks().forEach(function (c) { c.checked = false; });
      setAllMatching(false);
      refresh();
    });
    // Rows appended by "Load more": a fresh, unticked page joins the selection state.
    document.body.addEventListener("htmx:afterSettle", refresh);
    refresh();
  }

  // Pickers: show how many are ticked; close an open picker on a click elsewhere.
  function updatePicker(details) {
    var n = $all("input[type=checkbox]:checked", details).length;
    $(".picker-count", details).textContent = n ? String(n) : "";
  }

  document.addEventListener("change", function (event) {
    var details = event.target.closest && event.target.closest("details.picker");
    if (details) updatePicker(details);
  });

  document.addEventListener("click", function (event) {
    $all("details.picker[open]").forEach(function (details) {
      if (!details.contains(event.target)) details.open = false;
    });
  });
})();
