"""Progress of the long loops (training epochs, scoring, preprocessing, sweeps): a tqdm bar on a terminal, and
plain lines where output goes to a file, so that a log holds a readable line every LOG_SECONDS rather than
thousands of redrawn bars. Every loop with a progress display goes through bar(); messages printed while a bar
runs go through write(), which keeps a terminal's bar below them."""
import sys

from tqdm import tqdm

LOG_SECONDS = 30  # off a terminal: a line at the start, at most one every this many seconds, and one at the end
LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"

write = tqdm.write


def is_terminal(stream):
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Lines:
    """The stream tqdm draws on off a terminal: each drawing of the bar (tqdm redraws in place with a carriage
    return and pads with spaces) becomes one line; the empty drawings that clear a bar are dropped."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self):
        self.stream.flush()


class _LogBar(tqdm):
    """tqdm off a terminal: a postfix is shown with the next line, never drawn as a line of its own, and the
    closing line is left out when the last one already said the same."""

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def close(self):
        if not self.disable and self.n == self.last_print_n:
            self.leave = False
        super().close()


def bar(iterable=None, desc=None, total=None, unit="it", disable=False, leave=False, file=None):
    """tqdm(iterable) on a terminal (leave: keep the finished bar); elsewhere lines (see LOG_SECONDS), the last
    one always kept. file: where it goes, stderr by default."""
    file = file or sys.stderr
    if is_terminal(file):
        return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, leave=leave, file=file,
                    dynamic_ncols=True)
    return _LogBar(iterable, desc=desc, total=total, unit=unit, disable=disable, leave=True, file=_Lines(file),
                   mininterval=LOG_SECONDS, miniters=1, bar_format=LOG_FORMAT)
