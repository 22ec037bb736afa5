// echo index page: "Copy" buttons put the command line next to them on the clipboard.
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest(".echo-copy");
  if (!button) return;
  const code = button.parentElement.querySelector("code");
  try {
    await navigator.clipboard.writeText(code.textContent);
    button.textContent = "Copied";
  } catch {
    // No clipboard (plain HTTP on a LAN address): select the text for a manual copy.
    const range = document.createRange();
    range.selectNodeContents(code);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Press Ctrl-C";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
});
