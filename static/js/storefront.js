document.documentElement.classList.add("js");  // styles that need this script (the phone's filter toggle)

// Swap broken product images for the placeholder behind them (no inline handlers: CSP-friendly).
function showPlaceholder(img) {
  img.closest(".thumb").classList.add("broken");
  img.remove();
}
document.addEventListener("error", function (event) {
  var el = event.target;
  if (el && el.tagName === "IMG" && el.closest(".thumb")) {
    showPlaceholder(el);
  }
}, true);
// An image that failed while the page was parsing (before this deferred script ran) fired its
// error event unheard, and would show its alt text: find those now.
document.querySelectorAll(".thumb img").forEach(function (img) {
  if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) {
    showPlaceholder(img);
  }
});

// On a phone the filters sit behind a "Filters" button instead of filling the first screen.
(function () {
  var button = document.querySelector(".filters-button");
  if (!button) {
    return;
  }
  var panel = button.closest(".facets");
  button.addEventListener("click", function () {
    var open = !panel.classList.contains("open");
    panel.classList.toggle("open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
  });
})();

// Re-run the search as soon as a facet or the sort changes.
document.addEventListener("change", function (event) {
  var form = event.target.closest && event.target.closest("#filters");
  if (form && (event.target.name === "brand" || event.target.name === "sort" || event.target.name === "rating_min")) {
    form.submit();
  }
});

// Instant search: suggestions under the search box as the shopper types (GET /api/suggest).
// Keyboard: up/down move through them, Enter picks the highlighted one, Escape closes the list.
// A query suggestion runs that search; a product suggestion opens the product's page.
(function () {
  var form = document.querySelector("form.searchbox[data-suggest-url]");
  if (!form || !window.fetch) {
    return;
  }
  var input = form.querySelector("input[name=q]");
  var combo = form.querySelector("[role=combobox]");
  var list = form.querySelector("[role=listbox]");
  var DEBOUNCE_MS = 80;
  var items = [];
  var active = -1;
  var timer = null;
  var latest = 0;
  var cache = new Map();  // the last answers by typed text: backspacing needs no request

  function setExpanded(open) {
    list.hidden = !open;
    combo.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open) {
      setActive(-1);
    }
  }

  function setActive(index) {
    var options = list.children;
    if (active >= 0 && options[active]) {
      options[active].classList.remove("active");
      options[active].setAttribute("aria-selected", "false");
    }
    active = index;
    if (active >= 0 && options[active]) {
      options[active].classList.add("active");
      options[active].setAttribute("aria-selected", "true");
      input.setAttribute("aria-activedescendant", options[active].id);
      options[active].scrollIntoView({block: "nearest"});
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function render(suggestions) {
    items = suggestions;
    list.textContent = "";
    active = -1;
    input.removeAttribute("aria-activedescendant");
    suggestions.forEach(function (s, i) {
      var option = document.createElement("li");
      option.id = "suggestion-" + i;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", "false");
      option.className = "suggestion suggestion-" + s.kind;  // not the bare kind: .product styles the product page
      option.dataset.index = String(i);
      var text = document.createElement("span");
      text.className = "text";
      text.textContent = s.text;  // never innerHTML: suggestions are shoppers' and sellers' text
      option.appendChild(text);
      if (s.kind === "product") {
        var kind = document.createElement("span");
        kind.className = "kind";
        kind.textContent = "Product";
        option.appendChild(kind);
      }
      list.appendChild(option);
    });
    setExpanded(suggestions.length > 0 && document.activeElement === input);
  }

  function remember(q, suggestions) {
    cache.set(q, suggestions);
    if (cache.size > 50) {
      cache.delete(cache.keys().next().value);  // the oldest: a Map keeps insertion order
    }
  }

  function fetchSuggestions() {
    var q = input.value;
    if (!q.trim()) {
      render([]);
      return;
    }
    if (cache.has(q)) {
      render(cache.get(q));
      return;
    }
    var ticket = ++latest;
    var url = form.dataset.suggestUrl + "?q=" + encodeURIComponent(q);
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (!body) {
          return;  // refused (a 429 while typing fast): keep what is shown
        }
        remember(q, body.suggestions);
        if (ticket === latest && input.value === q) {  // an older answer never replaces a newer one
          render(body.suggestions);
        }
      })
      .catch(function () { /* offline or aborted: the search box still works without suggestions */ });
  }

  function pick(index) {
    var s = items[index];
    if (!s) {
      return;
    }
    setExpanded(false);
    if (s.kind === "product" && s.product_id) {
      window.location.assign(form.dataset.productUrl.replace("__id__", encodeURIComponent(s.product_id)));
    } else {
      input.value = s.text;
      form.submit();
    }
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(fetchSuggestions, DEBOUNCE_MS);
  });

  input.addEventListener("keydown", function (event) {
    var open = !list.hidden && items.length > 0;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!open) {
        if (items.length > 0 && input.value.trim()) {
          setExpanded(true);
        }
        event.preventDefault();
        return;
      }
      event.preventDefault();
      var step = event.key === "ArrowDown" ? 1 : -1;
      // Wraps through -1: past either end the highlight returns to the typed text.
      var next = active + step;
      if (next < -1) {
        next = items.length - 1;
      } else if (next >= items.length) {
        next = -1;
      }
      setActive(next);
    } else if (event.key === "Enter" && open && active >= 0) {
      event.preventDefault();
      pick(active);
    } else if (event.key === "Escape" && open) {
      event.preventDefault();  // keep the typed text (Escape would clear a search input)
      setExpanded(false);
    }
  });

  // mousedown, not click: the input keeps its focus, so the list is still there for the click.
  list.addEventListener("mousedown", function (event) {
    event.preventDefault();
  });
  list.addEventListener("click", function (event) {
    var option = event.target.closest("[role=option]");
    if (option) {
      pick(Number(option.dataset.index));
    }
  });
  list.addEventListener("mousemove", function (event) {
    var option = event.target.closest("[role=option]");
    if (option && Number(option.dataset.index) !== active) {
      setActive(Number(option.dataset.index));
    }
  });
  input.addEventListener("blur", function () {
    setExpanded(false);
  });
  input.addEventListener("focus", function () {
    if (items.length > 0 && input.value.trim()) {
      setExpanded(true);
    }
  });
})();
