"""The dashboard's Starlette app: pages over one project's store, and its few actions.

Every page is rendered on the server from the store's read APIs (Jinja2
templates, autoescaped); the browser gets plain HTML, one shared copy of
Plotly served from the installed ``plotly`` package, and a small script of
our own (``static/ui.js``) for the plots, the live run page and the actions.
Nothing is fetched from the network.

Example:
    >>> import tempfile
    >>> from mlcycle.project import Project
    >>> project = Project.init(tempfile.mkdtemp(), name="demo")
    >>> app = create_app(project)  # serve it with uvicorn, or Mount("/dashboard", app)
    >>> [route.path for route in app.routes][:4]
    ['/', '/runs', '/runs/{run_id}', '/api/runs/{run_id}/metrics']
    >>> project.close()
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
from collections.abc import Iterable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mlcycle import _html
from mlcycle.errors import ConflictError, MlcycleError, NotFoundError
from mlcycle.store import history as loop_history
from mlcycle.store import hold_promotion, promotion_hold, read_state, read_traffic
from mlcycle.ui import _deployments, _lineage, _loop, _monitoring, _runs
from mlcycle.ui._guard import ACTION_HEADER, HostGuard, allowed_names, check_action

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = ["create_app", "plotly_js"]

STATIC = Path(__file__).parent / "static"
LIVE_POLL_MS = 2000


def plotly_js() -> Path:
    """The ``plotly.min.js`` the installed ``plotly`` package ships: one copy for every page."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def create_app(
    project: Project,
    *,
    admin_token: str | None = None,
    host: str = "127.0.0.1",
    allowed_hosts: Iterable[str] = (),
) -> Starlette:
    """The dashboard over ``project`` (left open: the caller closes it).

    Args:
        admin_token: the Bearer token actions need (None: the dashboard is read-only).
        host: the address it is bound to (it answers to that name, and loopback's).
        allowed_hosts: other ``Host`` names it answers to (``*``: any).
    """
    names = frozenset(allowed_names(host, allowed_hosts))
    env = Environment(
        loader=PackageLoader("mlcycle.ui", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["when"] = _when
    env.filters["tojson_attr"] = lambda v: json.dumps(v, default=str)
    env.globals.update(esc=_html.esc, action_header=ACTION_HEADER, writable=admin_token is not None)

    def page(template: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
        text = env.get_template(template).render(
            project=project.spec.project.name, base=request.scope.get("root_path", ""), **context
        )
        return HTMLResponse(text, status_code=status)

    def failed(request: Request, exc: MlcycleError) -> HTMLResponse:
        status = 404 if isinstance(exc, NotFoundError) else 400
        return page("error.html", request, status, title="not found", message=str(exc))

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/runs", 303)

    def runs(request: Request) -> HTMLResponse:
        f = _runs.RunFilters.of(request.query_params)
        found = _runs.query_runs(project, f)
        rows = found.rows if found else []
        metrics = _runs.headline_metrics([r.run for r in rows], f.sort)
        states = {r.run.id: project.runs.state(r.run) for r in rows}
        pages = max(1, -(-found.total // f.size)) if found else 1
        return page(
            "runs.html",
            request,
            400 if f.errors else 200,
            title="runs",
            f=f,
            found=found,
            rows=rows,
            states=states,
            metrics=metrics,
            pages=pages,
            sorts=(*_SORT_COLUMNS, *(f"test.{m}" for m in metrics)),
        )

    def run(request: Request) -> HTMLResponse:
        try:
            record = project.runs.get(request.path_params["run_id"])
            lineage = _runs.run_lineage(project, record)
            artifacts = {
                path: project.store.get_artifact(sha) for path, sha in record.artifacts.items()
            }
        except MlcycleError as exc:
            return failed(request, exc)
        summary = record.summary
        environment = {k: summary[k] for k in _ENVIRONMENT if k in summary}
        environment.update(summary.get("environment") or {})
        return page(
            "run.html",
            request,
            title=f"run {record.name}",
            run=record,
            state=project.runs.state(record),
            params=_runs.flatten(record.params),
            test=summary.get("test") or {},
            ci=summary.get("test_ci") or {},
            environment=environment,
            lineage=lineage,
            artifacts=artifacts,
            poll_ms=LIVE_POLL_MS,
        )

    def run_metrics(request: Request) -> JSONResponse:
        try:
            record = project.runs.get(request.path_params["run_id"])
            after = int(request.query_params.get("after", "-1"))
        except ValueError:
            return JSONResponse({"error": "after: expected a step number"}, 400)
        except MlcycleError as exc:
            return JSONResponse({"error": str(exc)}, 404)
        return JSONResponse(
            {
                "run": record.id,
                "status": project.runs.state(record),
                "points": _runs.curves(project, record.id, after),
            }
        )

    def compare(request: Request) -> HTMLResponse:
        try:
            found = _runs.compare(project, request.query_params.getlist("run"))
        except MlcycleError as exc:
            return failed(request, exc)
        return page("compare.html", request, title="compare runs", **found)

    def studies(request: Request) -> HTMLResponse:
        f = _runs.RunFilters.of(request.query_params)
        found = project.store.run_page(
            tags=dict([STUDY_TAG]), offset=(f.page - 1) * f.size, limit=f.size
        )
        rows = [project.runs.get(row.run.id) for row in found.rows]  # with their artifacts
        return page("studies.html", request, title="studies", studies=rows, total=found.total)

    def models(request: Request) -> HTMLResponse:
        return page(
            "models.html", request, title="models", models=project.store.registry.list_models()
        )

    def model(request: Request) -> HTMLResponse:
        name = request.path_params["name"]
        registry = project.store.registry
        try:
            versions = registry.list_versions(name)
            history = registry.history(name)
            audits = {v.version: registry.audits(v) for v in versions}
        except MlcycleError as exc:
            return failed(request, exc)
        aliases = {a: v.version for v in versions for a in v.aliases}
        events = project.store.list_events(entity_type="model", entity_id=name, limit=200)
        return page(
            "model.html",
            request,
            title=f"model {name}",
            name=name,
            versions=versions,
            aliases=aliases,
            history=history,
            audits=audits,
            lineage=_lineage.lineage_tree(versions),
            loop=read_state(project.store, name),
            hold=promotion_hold(project.store, name),
            traffic=read_traffic(project.store, name),
            decisions=[
                e
                for e in loop_history(project.store, name, limit=_loop.SCANNED)
                if e.action != _loop.CHECKED
            ][: _loop.SHOWN],
            monitoring=[e for e in events if e.action == "monitor.report"],
        )

    def story(request: Request) -> Response:
        from mlcycle.loop._story import render_story  # the loop's stack, only when asked

        name = request.path_params["name"]
        try:
            project.store.registry.list_versions(name)
            with tempfile.TemporaryDirectory() as tmp:
                text = render_story(project, name, Path(tmp) / "story.html").read_text()
        except MlcycleError as exc:
            return failed(request, exc)
        return HTMLResponse(text, headers={"Content-Security-Policy": _SANDBOX})

    def model_diff(request: Request) -> HTMLResponse:
        name = request.path_params["name"]
        a_ref, b_ref = request.query_params.get("a", ""), request.query_params.get("b", "")
        try:
            a = project.store.registry.get(f"{name}@{a_ref}")
            b = project.store.registry.get(f"{name}@{b_ref}")
        except MlcycleError as exc:
            return failed(request, exc)
        return page("diff.html", request, title=f"{a.ref} vs {b.ref}", a=a, b=b, rows=_diff(a, b))

    def reports(request: Request) -> HTMLResponse:
        found = project.store.html_reports()
        monitored = {
            e.details.get("html"): (e.entity_id, e.details.get("version"), e.at)
            for e in project.store.list_events(entity_type="model", limit=5000)
            if e.action == "monitor.report" and e.details.get("html")
        }
        for report in found:
            report["monitor"] = monitored.get(report["sha256"])
        return page("reports.html", request, title="reports", reports=found)

    def monitoring(request: Request) -> HTMLResponse:
        return page("monitoring.html", request, title="monitoring", **_monitoring.overview(project))

    def model_monitoring(request: Request) -> HTMLResponse:
        name = request.path_params["name"]
        last = _runs.positive(request.query_params.get("last"), _monitoring.DEFAULT_REPORTS)
        try:
            found = _monitoring.model_monitoring(project, name, last)
        except MlcycleError as exc:
            return failed(request, exc)
        return page(
            "model_monitoring.html",
            request,
            title=f"monitoring {name}",
            name=name,
            m=found,
            last=last,
            max_reports=_monitoring.MAX_REPORTS,
        )

    def loop(request: Request) -> HTMLResponse:
        return page("loop.html", request, title="the loop", **_loop.loop_overview(project))

    def deployments(request: Request) -> HTMLResponse:
        window = request.query_params.get("window", _deployments.DEFAULT_WINDOW)
        if window not in _deployments.WINDOWS:
            message = f"window {window!r}: expected one of {', '.join(_deployments.WINDOWS)}"
            return page("error.html", request, 400, title="bad request", message=message)
        found, recent = _deployments.deployments(project, window)
        return page(
            "deployments.html",
            request,
            title="deployments",
            models=found,
            recent=recent,
            window=window,
            windows=list(_deployments.WINDOWS),
            live=request.query_params.get("live") == "1",
            live_s=_deployments.LIVE_S,
        )

    def artifact(request: Request) -> Response:
        sha = request.path_params["sha256"]
        try:
            record = project.store.get_artifact(sha)
            data = project.artifacts.read_bytes(sha)
        except MlcycleError as exc:
            return failed(request, exc)
        headers = {"Cache-Control": "private, max-age=31536000, immutable"}
        if record.media_type == "text/html":
            # A stored report runs its own scripts, but in an opaque origin: it cannot read
            # the dashboard's session (the admin token) nor act with it.
            headers["Content-Security-Policy"] = _SANDBOX
            root = request.scope.get("root_path", "")
            data = _with_way_back(_shared_plotly(data, root), root)
        else:
            headers["Content-Disposition"] = f'attachment; filename="{sha[:12]}"'
        return Response(data, media_type=record.media_type, headers=headers)

    def plotly(request: Request) -> Response:
        return FileResponse(
            plotly_js(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)  # a stored report's page asks for one

    async def login(request: Request) -> JSONResponse:
        refused = check_action(request, admin_token, names)
        return refused or JSONResponse({"ok": True})  # type: ignore[return-value]

    async def action(request: Request) -> tuple[str, dict[str, Any]] | Response:
        """The model an action names in its path and its JSON body, or the refusal."""
        refused = check_action(request, admin_token, names)
        if refused is not None:
            return refused
        body = await _json(request)
        if isinstance(body, Response):
            return body
        return request.path_params["name"], body

    async def move_alias(request: Request) -> Response:
        asked = await action(request)
        if isinstance(asked, Response):
            return asked
        name, body = asked
        alias, version, reason = body.get("alias"), body.get("version"), body.get("reason")
        if not isinstance(alias, str) or not isinstance(version, int) or isinstance(version, bool):
            return JSONResponse({"error": "expected {alias: str, version: int, reason}"}, 400)
        reason = reason if isinstance(reason, str) and reason.strip() else None
        try:
            previous = project.store.registry.set_alias(
                name, version, alias, actor=project.actor, reason=reason
            )
        except MlcycleError as exc:
            return JSONResponse({"error": str(exc)}, _status(exc))
        return JSONResponse({"model": name, "alias": alias, "to": version, "from": previous})

    async def promotions(request: Request) -> Response:
        """Hold or release the loop's promotions of a model (``{held: bool, reason: str}``)."""
        asked = await action(request)
        if isinstance(asked, Response):
            return asked
        name, body = asked
        held, reason = body.get("held"), body.get("reason")
        if not isinstance(held, bool) or not isinstance(reason, str) or not reason.strip():
            return JSONResponse({"error": "expected {held: true|false, reason: str}"}, 400)
        try:
            if not project.store.registry.list_versions(name):
                raise NotFoundError(f"model {name!r} has no versions")
            hold_promotion(project.store, name, held=held, actor=project.actor, reason=reason)
        except MlcycleError as exc:
            return JSONResponse({"error": str(exc)}, _status(exc))
        return JSONResponse({"model": name, "held": held, "reason": reason})

    async def rollback(request: Request) -> Response:
        asked = await action(request)
        if isinstance(asked, Response):
            return asked
        name, body = asked
        alias, reason = body.get("alias"), body.get("reason")
        if not isinstance(alias, str):
            return JSONResponse({"error": "expected {alias: str, reason}"}, 400)
        try:
            registry = project.store.registry
            target = registry.rollback_target(name, alias)
            previous = registry.set_alias(
                name,
                target,
                alias,
                actor=project.actor,
                reason=reason if isinstance(reason, str) and reason.strip() else "rollback",
                rollback=True,
            )
        except MlcycleError as exc:
            return JSONResponse({"error": str(exc)}, _status(exc))
        return JSONResponse({"model": name, "alias": alias, "to": target, "from": previous})

    routes = [
        Route("/", home),
        Route("/runs", runs),
        Route("/runs/{run_id}", run),
        Route("/api/runs/{run_id}/metrics", run_metrics),
        Route("/compare", compare),
        Route("/studies", studies),
        Route("/models", models),
        Route("/models/{name}", model),
        Route("/models/{name}/diff", model_diff),
        Route("/models/{name}/story", story),
        Route("/reports", reports),
        Route("/monitoring", monitoring),
        Route("/monitoring/{name}", model_monitoring),
        Route("/loop", loop),
        Route("/deployments", deployments),
        Route("/artifacts/{sha256}", artifact),
        Route("/static/plotly.min.js", plotly),
        Route("/favicon.ico", favicon),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/models/{name}/alias", move_alias, methods=["POST"]),
        Route("/api/models/{name}/rollback", rollback, methods=["POST"]),
        Route("/api/models/{name}/promotions", promotions, methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(HostGuard, names=names)])


# A stored or rendered report runs its own scripts in an opaque origin (no session, no token).
_SANDBOX = "sandbox allow-scripts allow-popups"
# The tag a tuning study's own run carries (mlcycle.tune._study, which is not imported here:
# it brings PyTorch and Optuna); its trials carry ``study=NAME``.
STUDY_TAG = ("kind", "study")
_SORT_COLUMNS = ("started", "name", "experiment", "status", "dataset", "model", "duration")
# What a run's summary says about where and how it ran.
_ENVIRONMENT = (
    "device",
    "train_seconds",
    "samples_per_s",
    "parameters",
    "flops_per_sample",
    "peak_memory_mb",
    "epochs_run",
    "best_epoch",
    "stopped_early",
)


async def _json(request: Request) -> dict[str, Any] | Response:
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": "the body is not JSON"}, 400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "expected a JSON object"}, 400)
    return body


def _status(exc: MlcycleError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    return 409 if isinstance(exc, ConflictError) else 400


def _diff(a: Any, b: Any) -> dict[str, list[Any]]:
    """Two versions' test metrics, training parameters and lineage, as ``mlcycle models diff``."""
    rows: dict[str, list[Any]] = {}
    ta, tb = a.metrics.get("test", {}), b.metrics.get("test", {})
    for key in dict.fromkeys([*ta, *tb]):
        rows[f"test.{key}"] = [ta.get(key), tb.get(key)]
    pa = _runs.flatten(a.lineage.get("params", {}).get("train", {}))
    pb = _runs.flatten(b.lineage.get("params", {}).get("train", {}))
    for key in dict.fromkeys([*pa, *pb]):
        rows[f"train.{key}"] = [pa.get(key), pb.get(key)]
    for key in ("run", "dataset", "dataset_fingerprint", "spec_sha256", "git"):
        rows[f"lineage.{key}"] = [a.lineage.get(key), b.lineage.get(key)]
    return rows


_WAY_BACK = (
    '<nav style="font:14px system-ui,sans-serif;background:#1f2933;padding:8px 24px">'
    '<a href="{base}/reports" style="color:#fff">&larr; mlcycle dashboard: every report</a></nav>'
)


# The copy of plotly.js a self-contained report embeds (its first figure's <script>)
_EMBEDDED_PLOTLY = re.compile(rb"<script[^>]*>/\*\*\n\* plotly\.js v([^\n]+)\n.*?</script>", re.S)


@functools.cache
def _plotly_version() -> bytes:
    """The version of the shared ``plotly.min.js`` (from its header comment)."""
    with plotly_js().open("rb") as f:
        found = re.search(rb"plotly\.js v([^\n]+)\n", f.read(200))
    return found.group(1).strip() if found else b""


def _shared_plotly(page: bytes, base: str) -> bytes:
    """A stored report with its embedded plotly.js swapped for the dashboard's shared copy.

    Reports stay self-contained in the store (they open offline, alone); served here,
    the browser fetches plotly.js once for every report and page instead of a 4.8 MB
    copy per report. Only the same version is swapped.
    """
    found = _EMBEDDED_PLOTLY.search(page)
    if found is None or found.group(1).strip() != _plotly_version():
        return page
    tag = f'<script src="{_html.esc(base)}/static/plotly.min.js"></script>'.encode()
    return page[: found.start()] + tag + page[found.end() :]


def _with_way_back(page: bytes, base: str) -> bytes:
    """A stored report with a link back into the dashboard, right after its ``<body>``."""
    start = page.find(b"<body")
    end = page.find(b">", start) if start >= 0 else -1
    link = _WAY_BACK.format(base=_html.esc(base)).encode()
    return page if end < 0 else page[: end + 1] + link + page[end + 1 :]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"
