"""How training says how far it is: one :class:`EpochProgress` event per finished epoch.

The stage only reports; what to draw is the caller's: ``mlcycle train`` draws
a Rich progress bar from these events (``mlcycle.cli``), the Python API prints
a plain line per epoch to stderr unless ``quiet``, and any other caller passes
its own ``on_progress``.

Example:
    >>> event = EpochProgress(epoch=3, epochs=10, metric="accuracy",
    ...     metrics={"train_loss": 0.41, "val_accuracy": 0.9}, improved=True,
    ...     elapsed_s=1.5, eta_s=3.5)
    >>> event.line()
    'epoch 3/10  loss 0.4100  val accuracy 0.9000 *  1.5 s, about 3.5 s to go at most'
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlcycle.train._loop import EpochReport

__all__ = ["EpochProgress", "Pace", "ProgressCallback", "interactive", "print_progress"]


@dataclass(frozen=True)
class EpochProgress:
    """One finished epoch.

    Attributes:
        epoch: the epoch, counted from 1.
        epochs: the most the run will train (``max_epochs``); early stopping may end it sooner.
        metric: the early-stopping metric's name (its value is ``metrics["val_" + metric]``).
        metrics: the epoch's metrics as the run records them (``train_loss``, ``val_…``).
        improved: the early-stopping metric improved on every earlier epoch.
        elapsed_s: seconds of training so far in this process.
        eta_s: seconds to ``epochs`` at the pace so far (an upper bound: it may stop early).
    """

    epoch: int
    epochs: int
    metric: str
    metrics: dict[str, float]
    improved: bool
    elapsed_s: float
    eta_s: float | None

    @property
    def value(self) -> float | None:
        """The early-stopping metric's value at this epoch."""
        return self.metrics.get(f"val_{self.metric}")

    def status(self) -> str:
        """``loss 0.4100  val accuracy 0.9000``, and `` *`` when the metric improved."""
        loss, value = self.metrics.get("train_loss"), self.value
        parts = [] if loss is None else [f"loss {loss:.4f}"]
        if value is not None:
            parts.append(f"val {self.metric} {value:.4f}" + (" *" if self.improved else ""))
        return "  ".join(parts)

    def line(self) -> str:
        """The event in one line of text."""
        text = f"epoch {self.epoch}/{self.epochs}  {self.status()}  {self.elapsed_s:.1f} s"
        if self.eta_s is not None:
            text += f", about {self.eta_s:.1f} s to go at most"
        return text


ProgressCallback = Callable[[EpochProgress], None]


def interactive() -> bool:
    """Whether someone watches: stderr is a terminal, or a notebook kernel runs us."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def print_progress(event: EpochProgress) -> None:
    """The Python API's default: one plain line per epoch on stderr."""
    print(event.line(), file=sys.stderr, flush=True)


class Pace:
    """Turns the training loop's epoch reports into :class:`EpochProgress` events.

    ``done`` is how many epochs an earlier process trained (a resumed run):
    the pace counts only this process's epochs.
    """

    def __init__(self, callback: ProgressCallback, epochs: int, metric: str, done: int = 0) -> None:
        self.callback = callback
        self.epochs = epochs
        self.metric = metric
        self.done = done
        self.started = time.monotonic()

    def __call__(self, report: EpochReport) -> None:
        elapsed = time.monotonic() - self.started
        trained = report.epoch + 1 - self.done  # epochs this process trained
        left = self.epochs - (report.epoch + 1)
        eta = elapsed / trained * left if trained > 0 else None
        self.callback(
            EpochProgress(
                epoch=report.epoch + 1,
                epochs=self.epochs,
                metric=self.metric,
                metrics=dict(report.metrics),
                improved=report.improved,
                elapsed_s=elapsed,
                eta_s=eta,
            )
        )
