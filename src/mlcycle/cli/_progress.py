"""The training progress bar: Rich, drawn from the train stage's epoch events.

The stage reports (:class:`~mlcycle.train.EpochProgress`); this draws. The
bar starts with the first event, so a resumed run's bar starts where the
earlier process stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

if TYPE_CHECKING:
    from mlcycle.train import EpochProgress

__all__ = ["EpochBar"]


class EpochBar:
    """``with EpochBar() as bar: train(project, on_progress=bar)``; ``EpochBar(False)`` draws nothing."""

    def __init__(self, show: bool = True) -> None:
        self.show = show
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> EpochBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, event: EpochProgress) -> None:
        if not self.show:
            return
        if self._bar is None:
            self._bar = Progress(
                TextColumn("[bold]epoch"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._bar.add_task(
                "train", total=event.epochs, completed=event.epoch - 1, status=""
            )
            self._bar.start()
        assert self._task is not None
        self._bar.update(self._task, completed=event.epoch, status=event.status())
