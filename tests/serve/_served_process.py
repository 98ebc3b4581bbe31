"""Run as a script: serve a model as ``mlcycle serve`` does, answer, print ``sys.modules``.

``python _served_process.py PROJECT REF RECORD_JSON`` builds the app of a
process that only serves (``own_process=True``), runs it with uvicorn on
loopback in this process, sends the record to ``/predict``, waits for alias
and traffic polls and a log flush, and prints one JSON line:
``{"status": ..., "answer": ..., "modules": [...]}``.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path

from mlcycle.serve import ServeSettings, create_app, serve_in_thread


def main(project: str, ref: str, record: str) -> None:
    settings = ServeSettings(project=Path(project), ref=ref, poll_s=0.2, log_flush_s=0.1)
    app = create_app(settings, own_process=True)
    with serve_in_thread(app) as url:
        body = json.dumps({"records": [json.loads(record)]}).encode()
        request = urllib.request.Request(
            f"{url}/predict", body, {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request) as reply:
            status, answer = reply.status, json.loads(reply.read())
        time.sleep(1.0)  # alias and traffic polls, and the log's flush, run in this process
    print(json.dumps({"status": status, "answer": answer, "modules": sorted(sys.modules)}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
