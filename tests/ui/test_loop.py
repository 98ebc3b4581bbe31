"""The loop page over a loop's real records: state, decisions, gate verdict, promotion."""

from __future__ import annotations

import httpx

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
