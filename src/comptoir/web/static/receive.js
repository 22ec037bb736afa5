// The upload page of `comptoir receive`: files and folders by drag and drop or pickers, one PUT
// per file (folder structure in the URL path), a progress bar with speed and a cancel button for
// each, and the list of received files refreshed after every upload.
// Text is only ever set with textContent: names come from other people.
"use strict";

(() => {
  const root = document.getElementById("receive");
  if (!root) return;
  const uploadUrl = root.dataset.uploadUrl;
  const maxSize = Number(root.dataset.maxSize || 0);
  const queue = document.getElementById("queue");
  const drop = document.getElementById("drop");
  const received = document.querySelector("#received tbody");
  const nothing = document.getElementById("nothing");
  // A few files at a time: enough to fill the link, few enough to keep each bar moving.
  const PARALLEL = 3;
  const waiting = [];
  let running = 0;

  for (const el of document.querySelectorAll(".upload-url")) {
    el.textContent = new URL(uploadUrl, location.href).href;
  }

  function humanSize(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
  }

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // Each component is encoded on its own: `/` separates folders, `%2F` would not.
  function urlFor(path) {
    return uploadUrl + path.split("/").map(encodeURIComponent).join("/");
  }

  function add(file, path) {
    const item = element("li", "upload");
    const name = element("span", "name", path);
    const bar = element("progress");
    bar.max = 1;
    bar.value = 0;
    const status = element("span", "status", "waiting");
    const cancel = element("button", "cancel", "Cancel");
    cancel.type = "button";
    item.append(name, bar, status, cancel);
    queue.append(item);
    const job = { file, path, item, bar, status, cancel, xhr: null, done: false };
    cancel.addEventListener("click", () => stop(job));
    if (maxSize && file.size > maxSize) {
      finish(job, `too large (limit ${humanSize(maxSize)})`, true);
      return;
    }
    waiting.push(job);
    pump();
  }

  function stop(job) {
    if (job.done) return;
    if (job.xhr) {
      job.xhr.abort();
    } else {
      waiting.splice(waiting.indexOf(job), 1);
      finish(job, "cancelled", true);
    }
  }

  function finish(job, text, failed) {
    job.done = true;
    job.status.textContent = text;
    job.cancel.disabled = true;
    job.item.classList.add(failed ? "failed" : "saved");
  }

  function pump() {
    while (running < PARALLEL && waiting.length) start(waiting.shift());
  }

  function start(job) {
    running++;
    const xhr = new XMLHttpRequest();
    job.xhr = xhr;
    let lastTime = performance.now();
    let lastLoaded = 0;
    let speed = 0;
    xhr.open("PUT", urlFor(job.path));
    xhr.setRequestHeader("Accept", "application/json");
    // With --password, uploads must carry the session's CSRF token (empty is fine without).
    const csrf = document.querySelector('meta[name="csrf-token"]');
    xhr.setRequestHeader("X-CSRF-Token", csrf ? csrf.content : "");
    xhr.upload.onprogress = (e) => {
      const now = performance.now();
      if (now - lastTime >= 250) {
        // Smoothed over the last few readings, so the number can be read.
        const instant = ((e.loaded - lastLoaded) * 1000) / (now - lastTime);
        speed = speed ? 0.7 * speed + 0.3 * instant : instant;
        lastTime = now;
        lastLoaded = e.loaded;
      }
      const total = e.lengthComputable ? e.total : job.file.size;
      job.bar.value = total ? e.loaded / total : 0;
      job.status.textContent = `${humanSize(e.loaded)} of ${humanSize(total)}` +
        (speed ? ` · ${humanSize(speed)}/s` : "");
    };
    xhr.upload.onload = () => {
      // Every byte is sent: the server is saving the file, and cancelling now could not undo
      // that, so the button goes (the page must not say "cancelled" of a file that was saved).
      job.cancel.disabled = true;
      job.status.textContent = "saving…";
    };
    xhr.onload = () => {
      let answer = null;
      try {
        answer = JSON.parse(xhr.responseText);
      } catch (err) {
        answer = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        job.bar.value = 1;
        const saved = answer && answer.files && answer.files[0];
        finish(job, saved ? `saved as ${saved.name}` : "saved", false);
        scheduleRefresh();
      } else {
        finish(job, (answer && answer.error) || `failed (${xhr.status})`, true);
      }
    };
    xhr.onerror = () => finish(job, "network error", true);
    xhr.onabort = () => finish(job, "cancelled", true);
    xhr.onloadend = () => {
      running--;
      pump();
    };
    job.status.textContent = "starting";
    xhr.send(job.file);
  }

  // A folder of many small files must not ask for the whole list after each one.
  let refreshTimer = null;
  function scheduleRefresh() {
    if (refreshTimer === null) {
      refreshTimer = setTimeout(() => {
        refreshTimer = null;
        refresh();
      }, 300);
    }
  }

  async function refresh() {
    let answer;
    try {
      const r = await fetch(uploadUrl, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!r.ok) return;
      answer = await r.json();
    } catch (err) {
      return;
    }
    const rows = answer.files.map((f) => {
      const row = element("tr");
      const size = element("td", "num");
      const span = element("span", "", humanSize(f.size));
      span.title = `${f.size.toLocaleString()} bytes`;
      size.append(span);
      row.append(element("td", "", f.name), size);
      return row;
    });
    received.replaceChildren(...rows);
    nothing.hidden = rows.length > 0;
  }

  // Directory entries come in batches: read until an empty one.
  function readAll(reader) {
    return new Promise((resolve, reject) => {
      const all = [];
      const next = () => reader.readEntries((batch) => {
        if (!batch.length) {
          resolve(all);
          return;
        }
        all.push(...batch);
        next();
      }, reject);
      next();
    });
  }

  async function walk(entry) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      add(file, entry.fullPath.replace(/^\/+/, ""));
    } else if (entry.isDirectory) {
      for (const child of await readAll(entry.createReader())) await walk(child);
    }
  }

  function dropped(event) {
    event.preventDefault();
    drop.classList.remove("over");
    const items = event.dataTransfer.items;
    if (!items || !items.length || !items[0].webkitGetAsEntry) {
      for (const file of event.dataTransfer.files) add(file, file.name);
      return;
    }
    // Entries must be taken now: the DataTransfer is emptied once this handler returns.
    const entries = [];
    for (const item of items) {
      if (item.kind !== "file") continue;
      const entry = item.webkitGetAsEntry();
      if (entry) entries.push(entry);
      else if (item.getAsFile()) add(item.getAsFile(), item.getAsFile().name);
    }
    (async () => {
      for (const entry of entries) {
        try {
          await walk(entry);
        } catch (err) {
          const item = element("li", "upload failed", `${entry.name}: could not be read`);
          queue.append(item);
        }
      }
    })();
  }

  // Dropping anywhere on the page uploads (rather than the browser opening the file).
  document.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  document.addEventListener("dragleave", (e) => {
    if (!e.relatedTarget) drop.classList.remove("over");
  });
  document.addEventListener("drop", dropped);

  for (const input of [document.getElementById("files"), document.getElementById("folder")]) {
    input.addEventListener("change", () => {
      for (const file of input.files) add(file, file.webkitRelativePath || file.name);
      input.value = "";
    });
  }
})();
