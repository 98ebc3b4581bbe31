"""The deployments page over a real prediction log: requests, rate, latency, errors, traffic."""

from __future__ import annotations

import httpx

from tests.ui.conftest import WATCHED, Site


def test_deployments_page_shows_traffic_split_and_log_figures(site: Site, served: str) -> None:
    page = httpx.get(f"{site.url}/deployments", timeout=30)
    assert page.status_code == 200
    assert 'href="/deployments">Deployments</a>' in page.text  # in the nav
    section = page.text.split(f'data-model="{WATCHED}"')[1].split("</section>")[0]
    assert "version 2 answers 10% (canary)" in section  # the loop's split
    v1 = section.split('data-version="1"')[1].split("</tr>")[0]
    cells = [c.split(">")[-1] for c in v1.split("</td>")[:-1]]
    # version, requests, per second, p50, p95, p99, errors, shadow, batch rows
    assert "@champion" in v1
    assert cells[1] == "10"  # the old request is outside the hour
    assert cells[3] == "5.5" and cells[5] == "9.91"
    assert cells[6] == "16.7%"  # 2 failed of 12
    assert cells[8] == "50"
    v2 = section.split('data-version="2"')[1].split("</tr>")[0]
    assert ">3</td>" in v2  # shadow requests
    assert f"{WATCHED}-requests-data" in section  # requests per minute, drawn
    longer = httpx.get(f"{site.url}/deployments", params={"window": "6h"}, timeout=30).text
    v1 = longer.split(f'data-model="{WATCHED}"')[1].split('data-version="1"')[1].split("</tr>")[0]
    assert ">11</td>" in v1
    assert httpx.get(f"{site.url}/deployments?window=2y", timeout=30).status_code == 400
    assert 'http-equiv="refresh"' not in page.text
    followed = httpx.get(f"{site.url}/deployments?window=5m&live=1", timeout=30).text
    assert '<meta http-equiv="refresh" content="10">' in followed
