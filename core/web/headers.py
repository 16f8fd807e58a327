"""The security headers every answer carries, set in one place (an ``after_request``).

- A strict Content-Security-Policy: scripts and styles from the app's own origin only (no
  inline ``<script>``, ``on*=`` handler or ``style=`` attribute runs or applies), no plugin
  objects, no ``<base>``, forms posted to the app only, and no framing by any site.
- ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``.
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy``, ``Permissions-Policy`` and
  ``Cross-Origin-Opener-Policy``.
- ``Strict-Transport-Security`` when the app is served over https (the request came over
  https, or ``PREFERRED_URL_SCHEME`` says the deployment is https behind its proxy).
- ``Cache-Control: no-store`` on every answer that does not set its own caching (pages of
  staff, patients and the console, API answers, errors): a shared or back-button cache never
  keeps patient data. Static files and scripts set their own and keep it.
"""

from flask import Flask, Response, current_app, request

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",  # the voice preview plays an audio blob
        "connect-src 'self'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)
HSTS = "max-age=31536000; includeSubDomains"

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: Flask-WTF checks that an https form post comes from its own origin.
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
}


def init_app(app: Flask) -> None:
    """Set the headers on every answer of ``app``."""
    app.after_request(add_headers)


def add_headers(response: Response) -> Response:
    """The policy of the module's docstring, on one answer (a header already set wins)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure or current_app.config["PREFERRED_URL_SCHEME"] == "https":
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response
