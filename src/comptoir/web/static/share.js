// share: "Copy link" next to the QR code (shown only where the clipboard API exists).
"use strict";
(function () {
  const button = document.getElementById("copy-url");
  if (!button || !navigator.clipboard) {
    return;
  }
  button.hidden = false;
  button.addEventListener("click", async function () {
    try {
      await navigator.clipboard.writeText(button.dataset.url);
      button.textContent = "Copied";
    } catch (err) {
      button.textContent = "Copy failed";
    }
    setTimeout(function () {
      button.textContent = "Copy link";
    }, 2000);
  });
})();
