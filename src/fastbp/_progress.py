"""Progress inside an epoch for ``verbose=2``: batches done, running loss,
samples per second and time left.

tqdm draws the bar when it is installed (``pip install fastbp[progress]``);
otherwise one plain text line is rewritten in place. Either way the display
is refreshed at most every ``interval`` seconds, so that the batch loop pays
one clock read per batch and nothing more.
"""
import sys
import time


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _duration(seconds):
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class EpochProgress:
    """The progress display of one epoch.

    Parameters
    ----------
    epoch : int
        1-based epoch number, shown as the label.
    n_batches, n_samples : int
        Totals of the epoch.
    interval : float, default=0.2
        Seconds between refreshes.
    file : file-like, default=sys.stdout (at call time)
    """

    def __init__(self, epoch, n_batches, n_samples, interval=0.2, file=None):
        self.n_batches = n_batches
        self.n_samples = n_samples
        self.interval = interval
        self.file = sys.stdout if file is None else file
        self.label = f"Epoch {epoch}"
        self.batches = self.samples = 0
        self.loss_sum = 0.0
        self._shown_batches = 0
        self._width = 0
        self.start = time.perf_counter()
        self._last = float("-inf")  # the first batch shows at once
        tqdm = _tqdm()
        self.bar = None
        if tqdm is not None:
            self.bar = tqdm(total=n_batches, desc=self.label, unit="batch",
                            file=self.file, leave=False, dynamic_ncols=True,
                            mininterval=interval)

    def update(self, n_samples, batch_loss):
        """Record one batch of ``n_samples`` samples with mean loss ``batch_loss``."""
        self.batches += 1
        self.samples += n_samples
        self.loss_sum += batch_loss * n_samples
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            self._show(now)

    def _stats(self, now):
        elapsed = max(now - self.start, 1e-9)
        rate = self.samples / elapsed
        left = (self.n_samples - self.samples) / rate if rate > 0 else float("inf")
        return self.loss_sum / max(self.samples, 1), rate, left

    def _show(self, now):
        loss, rate, left = self._stats(now)
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss={loss:.4g}, {rate:,.0f} samples/s", refresh=False)
            self.bar.update(self.batches - self._shown_batches)
            self._shown_batches = self.batches
            return
        line = (f"{self.label}: {self.batches}/{self.n_batches} batches, loss {loss:.4g}, "
                f"{rate:,.0f} samples/s, {_duration(left)} left")
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        self.file.write("\r" + line + pad)
        self.file.flush()

    def close(self):
        """Take the display down; the caller prints the epoch's summary line."""
        if self.bar is not None:
            self.bar.close()
            return
        if self._width:
            self.file.write("\r" + " " * self._width + "\r")
            self.file.flush()
