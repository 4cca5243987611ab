// Swap broken product images for the placeholder behind them (no inline handlers: CSP-friendly).
document.addEventListener("error", function (event) {
  var el = event.target;
  if (el && el.tagName === "IMG" && el.closest(".thumb")) {
    el.closest(".thumb").classList.add("broken");
    el.remove();
  }
}, true);

// Re-run the search as soon as a facet or the sort changes.
document.addEventListener("change", function (event) {
  var form = event.target.closest && event.target.closest("#filters");
  if (form && (event.target.name === "brand" || event.target.name === "sort" || event.target.name === "rating_min")) {
    form.submit();
  }
});
