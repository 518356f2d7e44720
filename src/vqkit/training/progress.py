"""What a training run shows while it runs: one progress bar for the whole run, and lines
printed cleanly below it."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """One bar over the run's training items (images, clips or sequences, all ranks).

    Its description says ``epoch k/N``; its rate is in the task's unit (and, for audio clips,
    in seconds of audio per second); its ETA honours a ``max_minutes`` budget: the bar's total
    becomes what the remaining budget allows at the measured rate, when that is less than the
    epochs left. Lines from :meth:`write` appear below the bar, never through it.

    Parameters
    ----------
    enabled : bool
        False shows nothing (lines from :meth:`write` are still printed).
    unit : str
        What an item is, e.g. "img" or "clip".
    items_per_epoch, epochs : int
        The whole run is ``items_per_epoch * epochs`` items.
    done : int
        Items already done (a resumed run).
    budget_s : float
        This invocation's wall-clock budget; 0: none.
    seconds_per_item : float
        Audio seconds in one item (0 for images): shown as a second rate.
    """

    def __init__(self, *, enabled: bool, unit: str, items_per_epoch: int, epochs: int,
                 done: int, budget_s: float = 0.0, seconds_per_item: float = 0.0) -> None:
        self.full_total = items_per_epoch * epochs
        self.epochs, self.budget_s = epochs, budget_s
        self.seconds_per_item = seconds_per_item
        self.t0, self.done0 = time.time(), done
        self.bar = (tqdm(total=self.full_total, initial=min(done, self.full_total), unit=unit,
                         unit_scale=False, dynamic_ncols=True, leave=False, file=sys.stderr,
                         smoothing=0.05) if enabled else None)
        self.extra: dict[str, str] = {}

    def epoch(self, k: int) -> None:
        """Entering epoch ``k`` (0-based)."""
        if self.bar is not None:
            self.bar.set_description(f"epoch {k + 1}/{self.epochs}", refresh=False)

    def update(self, n: int) -> None:
        if self.bar is None:
            return
        self.bar.update(n)
        if self.budget_s:
            spent = time.time() - self.t0
            rate = (self.bar.n - self.done0) / max(spent, 1e-9)
            reachable = self.bar.n + int(rate * max(0.0, self.budget_s - spent))
            self.bar.total = max(self.bar.n, min(self.full_total, reachable))

    def show(self, **values: str) -> None:
        """Values shown after the rate, e.g. ``loss="0.0123"``."""
        if self.bar is None:
            return
        self.extra.update(values)
        post = dict(self.extra)
        if self.seconds_per_item and self.bar.format_dict.get("rate"):
            post["audio"] = f"{self.bar.format_dict['rate'] * self.seconds_per_item:.0f} s/s"
        self.bar.set_postfix(post, refresh=False)

    def write(self, line: str) -> None:
        """A line below the bar (or plain, without one)."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
