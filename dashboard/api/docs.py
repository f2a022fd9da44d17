"""``/api/v1/docs``: Swagger UI over the OpenAPI document, served from the installed package (no CDN)
under the app's Content-Security-Policy.

flask-openapi3's own page starts Swagger UI from an inline script that the policy refuses, so the page
is ours: the same bundled files, and one fixed inline script allowed by its hash, nothing else inline.
"""

from __future__ import annotations

import base64
import hashlib

from flask import Flask
from werkzeug.wrappers import Response

from dashboard.security import content_security_policy

__all__ = ["PAGE", "POLICY", "docs_page", "install_docs"]

# Relative URLs: the page is served at /api/v1/docs and /api/v1/swagger, the files under /api/v1/swagger/.
_START = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", window.location.href).href,
    dom_id: "#swagger-ui", deepLinking: true, layout: "StandaloneLayout",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    showExtensions: true, showCommonExtensions: true
  });
};"""

PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>NetPulse API</title>
<link rel="icon" href="swagger/images/swagger.svg">
<link rel="stylesheet" type="text/css" href="swagger/css/swagger-ui.css">
<style>body {{ margin: 0; background: #fafafa; }}</style>
</head>
<body>
<div id="swagger-ui"></div>
<script src="swagger/js/swagger-ui-bundle.js"></script>
<script src="swagger/js/swagger-ui-standalone-preset.js"></script>
<script>{_START}</script>
</body>
</html>
"""
POLICY = content_security_policy(["'sha256-" + base64.b64encode(hashlib.sha256(_START.encode()).digest()).decode()
                                  + "'"])


def docs_page() -> Response:
    response = Response(PAGE, mimetype="text/html")
    response.headers["Content-Security-Policy"] = POLICY
    return response


def install_docs(app: Flask, prefix: str) -> None:
    """Serve the page at ``{prefix}/docs`` and in place of flask-openapi3's ``{prefix}/swagger``."""
    if "swagger.swagger" in app.view_functions:
        app.view_functions["swagger.swagger"] = docs_page
    app.add_url_rule(f"{prefix}/docs", "api_docs", docs_page)
