// Starts Swagger UI on the schema named by the page (no inline script: the console's CSP forbids it).
"use strict";
(() => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // Requests made from the page ride on the console session: send its CSRF token with changes.
    requestInterceptor: (request) => {
      const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
      if (match && request.method && request.method !== "GET") {
        request.headers["X-CSRFToken"] = decodeURIComponent(match[1]);
      }
      return request;
    },
  });
})();
