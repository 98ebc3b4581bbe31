"""Actions: refused without the admin token, the custom header or from another origin; done with them."""

from __future__ import annotations

from typing import Any

import httpx

from mlcycle.store import promotion_hold
from tests.ui.conftest import TOKEN, Site


def post(site: Site, path: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(site.url + path, json=body, headers=headers, timeout=30)


GOOD = {"Authorization": f"Bearer {TOKEN}", "X-Mlcycle-Action": "1"}


def test_alias_move_refused_without_token_header_or_from_another_site(site: Site) -> None:
    before = site.project.store.registry.get("iris@champion").version
    path = "/api/models/iris/alias"
    body = {"alias": "champion", "version": 2, "reason": "x"}
    assert post(site, path, body, **{"X-Mlcycle-Action": "1"}).status_code == 401
    wrong = {"Authorization": "Bearer nope", "X-Mlcycle-Action": "1"}
    assert post(site, path, body, **wrong).status_code == 403
    assert post(site, path, body, Authorization=f"Bearer {TOKEN}").status_code == 403
    cross = {**GOOD, "Origin": "http://attacker.example"}
    assert post(site, path, body, **cross).status_code == 403
    form = httpx.post(site.url + path, data=body, headers=GOOD, timeout=30)
    assert form.status_code == 415
    assert site.project.store.registry.get("iris@champion").version == before


def test_alias_move_and_rollback_with_the_token_write_the_cli_events(site: Site) -> None:
    registry = site.project.store.registry
    before = registry.get("iris@champion").version
    target = 2 if before == 1 else 1
    moved = post(
        site,
        "/api/models/iris/alias",
        {"alias": "champion", "version": target, "reason": "better on recent data"},
        **GOOD,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json() == {"model": "iris", "alias": "champion", "to": target, "from": before}
    assert registry.get("iris@champion").version == target
    event = registry.history("iris", "champion")[-1]
    assert event.reason == "better on recent data"
    assert event.details["from"] == before and event.details["to"] == target
    assert "better on recent data" in httpx.get(f"{site.url}/models/iris").text

    back = post(site, "/api/models/iris/rollback", {"alias": "champion"}, **GOOD)
    assert back.status_code == 200, back.text
    assert registry.get("iris@champion").version == before
    assert registry.history("iris", "champion")[-1].details.get("rollback") is True


def test_an_unknown_version_is_a_clear_error(site: Site) -> None:
    answer = post(site, "/api/models/iris/alias", {"alias": "champion", "version": 99}, **GOOD)
    assert answer.status_code == 404
    assert "99" in answer.json()["error"]


def test_login_checks_the_token(site: Site) -> None:
    assert post(site, "/api/login", {}, **GOOD).status_code == 200
    assert post(site, "/api/login", {}, **{"X-Mlcycle-Action": "1"}).status_code == 401


def test_the_loops_promotions_are_held_and_released_with_the_token(site: Site) -> None:
    store = site.project.store
    path = "/api/models/iris/promotions"
    body = {"held": True, "reason": "release freeze"}
    assert post(site, path, body, **{"X-Mlcycle-Action": "1"}).status_code == 401
    assert promotion_hold(store, "iris") is None
    assert post(site, path, {"held": "yes", "reason": "x"}, **GOOD).status_code == 400
    assert post(site, path, {"held": True, "reason": " "}, **GOOD).status_code == 400
    assert post(site, "/api/models/nope/promotions", body, **GOOD).status_code == 404

    held = post(site, path, body, **GOOD)
    assert held.status_code == 200, held.text
    hold = promotion_hold(store, "iris")
    assert hold is not None and hold.reason == "release freeze"  # what the loop reads
    assert "promotions held</b> by" in httpx.get(f"{site.url}/models/iris", timeout=30).text
    released = post(site, path, {"held": False, "reason": "freeze over"}, **GOOD)
    assert released.status_code == 200 and promotion_hold(store, "iris") is None
    assert "promotions held" not in httpx.get(f"{site.url}/models/iris", timeout=30).text
