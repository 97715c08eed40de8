// homelabcmd console: the only script. It enhances, never enables: every page and form works
// without it. Pages that ask for it (<body data-refresh="30">) reload themselves now and then,
// at the same URL so their filters stay, unless someone is typing in them or has a form open,
// the tab is hidden, or the "Refresh every … s" box is unticked (remembered in this browser).
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  var toggle = document.getElementById("autorefresh");
  if (!seconds || !toggle) {
    return;
  }
  var storageKey = "homelab.autorefresh";
  var touched = false;
  toggle.parentNode.hidden = false;
  try {
    toggle.checked = window.localStorage.getItem(storageKey) !== "off";
  } catch (e) { /* storage may be disabled: default on */ }
  toggle.addEventListener("change", function () {
    try {
      window.localStorage.setItem(storageKey, toggle.checked ? "on" : "off");
    } catch (e) { /* nothing to remember it in */ }
  });
  document.addEventListener("input", function (event) {
    if (event.target !== toggle) {
      touched = true;
    }
  });
  window.setInterval(function () {
    var focused = document.activeElement;
    var typing = focused && /^(INPUT|TEXTAREA|SELECT)$/.test(focused.tagName) && focused !== toggle;
    var opened = document.querySelector("details.form[open]");  // a Reject or Run form in use
    if (toggle.checked && !touched && !typing && !opened && !document.hidden) {
      window.location.reload();
    }
  }, seconds * 1000);
})();
