"""A progress bar that says when a step of training or evaluation waits on compiling.

A fresh install compiles each kernel the first time a model reaches it, for this CPU, and
Numba caches it for later runs: the first step of a run on a new machine waits tens of
seconds (``python -m cnnkit.bench.first_step`` measures it; BENCHMARKS.md, "One parallel loop
for every kernel"), and the first evaluation compiles kernels of its own, while the bar stands
at its first batch. ``compiling_shown`` says so on the bar while it happens.
"""
import contextlib

from numba.core import event

COMPILING = "compiling kernels for this CPU, once"


class _Note(event.Listener):
    """Listens to Numba's compile events and puts ``COMPILING`` on the bar at the first."""

    def __init__(self, bar, description):
        self.bar, self.description, self.showing = bar, description, False

    def on_start(self, ev):
        if not self.showing:
            self.showing = True
            self.bar.set_description_str(f"{self.description} ({COMPILING})", refresh=True)

    def on_end(self, ev):
        pass

    def step_done(self):
        """After a step: the bar's own description again, if the note was up."""
        if self.showing:
            self.showing = False
            self.bar.set_description_str(self.description, refresh=False)


@contextlib.contextmanager
def compiling_shown(bar, description):
    """Within it, ``bar`` (a tqdm bar described as ``description``) says when Numba compiles;
    call the yielded note's ``step_done()`` after each step. Nothing is listened to when the
    bar is not shown."""
    note = _Note(bar, description)
    if bar.disable:
        yield note
        return
    with event.install_listener("numba:compile", note):
        yield note
