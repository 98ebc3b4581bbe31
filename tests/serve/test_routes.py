"""One route table: the fast path and Starlette's fallback are built from the same entries."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Route as StarletteRoute

from mlcycle.serve import ServeSettings, create_app
from mlcycle.serve._http import Call, Reply, Route, Router


async def _ok(call: Call) -> Reply:
    return Reply(b"{}")


TABLE = [
    Route("GET", "/v2", "v2", _ok),
    Route("GET", "/v2/models/{name}", "metadata", _ok),
    Route("GET", "/v2/models/{name}/versions/{version}", "metadata", _ok),
    Route("POST", "/v2/models/{name}/infer", "infer", _ok),
    Route("POST", "/v2/models/{name}/versions/{version}/infer", "infer", _ok),
    Route("POST", "/predict", "predict", _ok),
]


def test_the_router_matches_methods_and_segments_as_starlette_does() -> None:
    router = Router(TABLE)
    hit = router.match("POST", "/v2/models/fraud/versions/3/infer")
    assert hit is not None and hit[0].name == "infer"
    assert hit[1] == {"name": "fraud", "version": "3"}
    hit = router.match("GET", "/v2/models/fraud")
    assert hit is not None and hit[0].name == "metadata" and hit[1] == {"name": "fraud"}
    assert router.match("POST", "/predict") is not None
    # what Starlette answers itself: other methods (405), empty or extra segments (404)
    assert router.match("GET", "/predict") is None
    assert router.match("POST", "/v2/models//infer") is None
    assert router.match("POST", "/v2/models/a/b/infer") is None
    assert router.match("POST", "/v2/models/fraud/infer/") is None
    assert router.match("GET", "/v2/models/fraud/versions/3/ready") is None


def test_every_route_is_declared_once_for_both_paths(tmp_path: Path) -> None:
    app = create_app(ServeSettings(project=tmp_path, ref="m@champion", poll_s=0))
    app.server.log.close()  # never started: only its table is looked at
    app.server.executor.shutdown()
    declared = {(r.method, r.path) for r in app.routes}
    assert len(declared) == len(app.routes)  # no route twice
    starlette = {
        (method, route.path)
        for route in app.fallback.routes
        if isinstance(route, StarletteRoute)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert starlette == declared
    for route in app.routes:  # each one reachable on the fast path
        path = route.path.replace("{name}", "m").replace("{version}", "1")
        hit = app.router.match(route.method, path)
        assert hit is not None and hit[0] is route
    assert {"/v2/models/{name}/infer", "/predict", "/feedback", "/metrics"} <= {
        r.path for r in app.routes
    }
