"""The dashboard (``mlcycle ui``): a project's runs, studies, models, deployments, monitoring,
loop and reports in the browser.

A Starlette app over the project's store, read-only unless given the admin
token: ``mlcycle ui`` serves it alone; :func:`create_app` makes it to mount in
a larger ASGI app (``Mount("/dashboard", create_app(project))``).
"""

from __future__ import annotations

from mlcycle.ui._app import create_app, plotly_js

__all__ = ["create_app", "plotly_js"]
