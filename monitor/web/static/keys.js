// Keyboard navigation for the reading room; every page works without it.
// j / k: next and previous story; o or Enter: open it; r / n: label it relevant or not;
// s: save it (or take it off the saved list); /: the search box.
(function () {
  "use strict";
  var current = -1;

  function stories() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-story]"));
  }

  function select(index) {
    var all = stories();
    if (!all.length) { return; }
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach(function (el, i) { el.classList.toggle("selected", i === current); });
    all[current].scrollIntoView({ block: "nearest" });
  }

  function chosen() {
    var all = stories();
    if (all.length === 1) { return all[0]; }  // a story page: the story itself
    return current >= 0 ? all[current] : null;
  }

  function press(key) {
    var story = chosen();
    var button = story && story.querySelector('button[data-key="' + key + '"]');
    if (button) { button.click(); }
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" ||
                   target.tagName === "SELECT" || target.isContentEditable)) { return; }
    var story;
    switch (event.key) {
      case "j": select(current + 1); break;
      case "k": select(current - 1); break;
      case "o":
      case "Enter":
        story = chosen();
        var link = story && story.querySelector("h2 a, h1 a");
        if (link) { link.click(); } else { return; }
        break;
      case "r": press("r"); break;
      case "n": press("n"); break;
      case "s": press("s"); break;
      case "/":
        var box = document.querySelector('input[type="search"]');
        if (box) { box.focus(); } else { return; }
        break;
      default: return;
    }
    event.preventDefault();
  });
})();
