"""The loop page over a loop's real records: state, decisions, gate verdict, promotion."""

from __future__ import annotations

import httpx

from mlcycle.store import hold_promotion
from tests.ui.conftest import WATCHED, Site


def test_loop_page_lists_models_with_a_loop_and_their_latest_events(
    site: Site, looped: str
) -> None:
    page = httpx.get(f"{site.url}/loop", timeout=30)
    assert page.status_code == 200
    assert 'href="/loop">Loop</a>' in page.text  # in the nav
    section = page.text.split(f'data-model="{WATCHED}"')[1].split("</section>")[0]
    assert looped == WATCHED
    assert "phase <b>rollout</b>" in section
    assert f'href="/models/{WATCHED}/story"' in section
    assert "version 2 answers 10% (canary)" in section
    assert "feature drift in petal_length_cm" in section and "triggered" in section
    assert ">checked<" not in section
    assert "v2 vs v1 on accuracy" in section and "<b" in section and "promote</b>" in section
    assert "@champion: - → 1" in section  # its registration's alias
    recent = page.text.split('id="recent"')[1].split("</table>")[0]
    assert "feature drift in petal_length_cm" in recent


def test_a_hold_on_the_loops_promotions_shows_on_its_section(site: Site, looped: str) -> None:
    store = site.project.store
    hold_promotion(store, looped, held=True, actor="ops", reason="release freeze")
    try:
        page = httpx.get(f"{site.url}/loop", timeout=30).text
        section = page.split(f'data-model="{looped}"')[1].split("</section>")[0]
        assert "<b>promotions held</b> by ops" in section and "release freeze" in section
    finally:
        hold_promotion(store, looped, held=False, actor="ops", reason="freeze over")
    page = httpx.get(f"{site.url}/loop", timeout=30).text
    assert "promotions held" not in page.split(f'data-model="{looped}"')[1].split("</section>")[0]
