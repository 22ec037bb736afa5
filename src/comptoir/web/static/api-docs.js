// The api site's /docs page: Swagger UI (vendored, no CDN) on the site's own OpenAPI document,
// whose URL the page gives in data-openapi (no inline script: the page's CSP forbids them).
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi"),
    domNode: root,
    deepLinking: true,
    tryItOutEnabled: true,
  });
});
