"""Chapter 9: Ctrl-C during training, which stops it between two steps, never inside one.

Python's own SIGINT handler raises KeyboardInterrupt wherever the program happens to be:
between the optimiser's update and the step counter, a checkpoint written at that moment
holds the new weights under the old step number, and a resumed run repeats a step.
``CtrlCBetweenSteps`` turns the first Ctrl-C into a request that the training loop reads
between steps; the loop then saves and raises ``TrainingInterrupted``, which says what
the checkpoint holds.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``Trainer.train``.

    step: the last finished step, the one the trainer holds; None when a second Ctrl-C
    stopped it at once, perhaps halfway through a step. saved_step: the step that the
    checkpoint at path holds; None when there is none.
    """

    def __init__(self, step: int | None, saved_step: int | None, path: Path | None):
        self.step, self.saved_step, self.path = step, saved_step, path
        when = "at once" if step is None else f"after step {step}"
        saved = "nothing saved" if saved_step is None else f"{path} holds step {saved_step}"
        super().__init__(f"training stopped {when}; {saved}")


class CtrlCBetweenSteps:
    """While in ``with``, a Ctrl-C (SIGINT) only sets ``requested``, which the training
    loop reads between steps.

    A second Ctrl-C raises KeyboardInterrupt at once: whoever presses it twice wants out
    now, even in the middle of a long step or evaluation. Nothing that was saved is lost
    (checkpoints are written atomically), only the steps after the last checkpoint.

    Only the main thread receives signals, so elsewhere this changes nothing; nor does it
    when SIGINT is ignored (a background job) or left to the operating system.
    """

    def __init__(self, announce: bool = True):
        self.requested = False
        self.announce = announce
        self.previous = None

    def __enter__(self) -> CtrlCBetweenSteps:
        if threading.current_thread() is threading.main_thread() and callable(signal.getsignal(signal.SIGINT)):
            self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            try:  # os.write, not print: the handler may run while print is writing the progress bar
                os.write(2, b"\nCtrl-C: stopping after this step (Ctrl-C again stops at once)\n")
            except OSError:
                pass

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
