// chekt-sandbox dashboard: copy buttons (the only script of our own; no inline scripts).
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("button.copy");
  if (!button) return;
  event.preventDefault();
  var text = button.dataset.copy;
  if (text === undefined && button.dataset.copyTarget) {
    text = document.getElementById(button.dataset.copyTarget).textContent;
  }
  if (text === undefined && button.dataset.copyPrevious) {
    var slot = button.closest(".secret-slot");
    var found = slot && slot.querySelector(button.dataset.copyPrevious);
    text = found ? found.textContent : "";
  }
  if (navigator.clipboard && text) {
    navigator.clipboard.writeText(text).then(function () {
      button.textContent = "Copied";
    }, function () {
      button.textContent = "Copy failed";
    });
  }
});

// a live indicator: body[data-live] while the page's event stream is open
document.addEventListener("htmx:sseOpen", function () {
  document.body.dataset.live = "1";
});
document.addEventListener("htmx:sseError", function () {
  delete document.body.dataset.live;
});

// a live refresh keeps the attempt lists the reader opened
var opened = [];
document.addEventListener("htmx:beforeSwap", function () {
  opened = Array.prototype.map.call(document.querySelectorAll("details.attempts[open]"), function (d) {
    return d.id;
  });
});
document.addEventListener("htmx:afterSwap", function () {
  opened.forEach(function (id) {
    var details = document.getElementById(id);
    if (details) details.open = true;
  });
});
