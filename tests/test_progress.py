"""Progress display: a tqdm bar on a terminal, plain lines in a log file."""
import io

from conftest import REPO

from forensics import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_each_step_is_one_plain_line_when_it_is_due(monkeypatch):
    monkeypatch.setattr(progress, "LOG_SECONDS", 0)
    log = io.StringIO()
    bar = progress.bar(range(3), desc="epoch 1/2", unit="step", file=log)
    for i in bar:
        bar.set_postfix(loss=f"{i}.5")  # shown with the next line, never a line of its own
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 4  # the start and one line a step; the end said no twice
    assert [line.split(" [")[0] for line in lines] == [f"epoch 1/2: {n}/3 step" for n in range(4)]
    assert lines[1].endswith("loss=0.5]") and lines[-1].endswith("loss=2.5]")


def test_off_a_terminal_a_quick_loop_writes_its_start_and_end_only():
    log = io.StringIO()
    for _ in progress.bar(range(1000), desc="cropping", unit="video", file=log):
        pass
    lines = log.getvalue().splitlines()
    assert [line.split(" [")[0] for line in lines] == ["cropping: 0/1000 video", "cropping: 1000/1000 video"]


def test_on_a_terminal_it_is_tqdms_bar_redrawn_in_place():
    screen = Terminal()
    for _ in progress.bar(range(3), desc="score c40", file=screen, leave=True):
        pass
    assert "\r" in screen.getvalue() and "100%|" in screen.getvalue()


def test_every_progress_display_goes_through_the_one_helper():
    sources = [p.relative_to(REPO) for p in REPO.rglob("*.py")]
    users = [p.as_posix() for p in sources if p.parts[0] != "tests" and p.name != "progress.py"
             and "tqdm" in (REPO / p).read_text()]
    assert users == []
