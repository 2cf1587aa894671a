"""Progress bars for long decoding runs, kept out of model code: the decoder reports `(done, total)` blocks to
whatever callback it is given, and this one draws them."""

from __future__ import annotations

from tqdm.auto import tqdm


class ProgressBar:
    """A `(done, total)` callback that draws a tqdm bar, closed when `done` reaches `total`."""

    def __init__(self, description: str = "Decoding", unit: str = "block"):
        self.description, self.unit = description, unit
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.description, unit=self.unit)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()
