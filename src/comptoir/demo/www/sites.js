// The demo sites share this page's scheme and port, which static HTML cannot know: fill them in,
// keeping each link's path (a share's or a drop's link).
for (const link of document.querySelectorAll("a[data-host]")) {
  const url = new URL(link.getAttribute("href"));
  url.protocol = location.protocol;
  url.hostname = link.dataset.host;
  url.port = location.port;
  link.href = url.href;
}
