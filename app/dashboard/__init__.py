"""The dashboard's static files (``static/``): a page on the public ``/v1`` API, served by
``app.api.routes.dashboard``. No Python here beyond this marker; see docs/dashboard.md."""
