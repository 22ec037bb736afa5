// The demo sites share this page's port, which static HTML cannot know: fill it in.
for (const link of document.querySelectorAll("a[data-host]")) {
  const port = location.port ? ":" + location.port : "";
  link.href = location.protocol + "//" + link.dataset.host + port + "/";
}
