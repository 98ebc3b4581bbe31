"""The lineage tree on a model page: dataset version → run → version → derived variants."""

from __future__ import annotations

import httpx

from mlcycle.monitor import MonitorResult
from tests.ui.conftest import WATCHED, Site


def test_model_page_draws_the_lineage_tree(site: Site, watched: list[MonitorResult]) -> None:
    page = httpx.get(f"{site.url}/models/{WATCHED}", timeout=30)
    assert page.status_code == 200
    tree = page.text.split('id="lineage"')[1].split("</section>")[0]
    assert 'href="/runs?dataset=iris%401"><b>iris@1</b>' in tree
    v1 = tree.split('<li data-version="1">')[1]
    assert f'run <a href="/runs/{site.trained[0]}">' in v1.split("\n")[0]
    # v2 inside v1's item (before it closes), with how it was made
    v2 = v1.split("</li>")[0].split('<ul><li data-version="2">')[1]
    assert v2.startswith('<span class="note">prune ratio=0.5 →</span>')
    assert f'run <a href="/runs/{site.trained[1]}">' in v2
    assert f'<a href="#v2"><b>{WATCHED}@2</b></a>' in v2
    assert 'id="v2"' in page.text  # the link's target: the version's row
