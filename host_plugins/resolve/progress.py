"""Progress and a way to cancel while the bridge makes the plates.

With UIManager: a small window with the frame count and a Cancel button; the render runs on a
worker thread and a UIManager timer brings its progress to the window (UI calls stay on
Fusion's thread). Without it: a line per frame in the console, and cancelling by creating a
file named ``STOP`` in the plates folder (the line says where). Either way a cancel stops after
the frames in flight, whose plates are complete.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

if TYPE_CHECKING:
    from .fusion_api import Bmd, UIManager

Progress = Callable[[int, int, Any], None]
Work = Callable[[Progress, threading.Event], Any]
STOP_FILE = "STOP"


def run(work: Work, *, ui: Optional[UIManager], bmd: Optional[Bmd], say: Callable[[str], None], folder: str,
        title: str = "RVM Matte") -> Any:
    """Run ``work(progress, cancel)`` and return what it returns (its exception is raised here)."""
    if ui is not None and bmd is not None:
        return _in_window(work, ui, bmd, title)
    return _in_console(work, say, folder)


def _in_console(work: Work, say: Callable[[str], None], folder: str) -> Any:
    cancel = threading.Event()
    stop = os.path.join(folder, STOP_FILE)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        pass  # a folder only the bridge sees; the render says so if it matters
    if os.path.exists(stop):
        os.remove(stop)
    say(f"RVM Matte: to cancel, create a file named {STOP_FILE} in {folder}")

    def progress(done: int, total: int, result: Any) -> None:
        say(f"RVM Matte: frame {getattr(result, 'frame', '?')} ({done}/{total})")
        if os.path.exists(stop):
            cancel.set()

    try:
        return work(progress, cancel)
    finally:
        if os.path.exists(stop):
            os.remove(stop)


def _in_window(work: Work, ui: UIManager, bmd: Bmd, title: str) -> Any:
    dispatcher = bmd.UIDispatcher(ui)
    window = dispatcher.AddWindow({"ID": "RVMProgress", "WindowTitle": title, "Geometry": [240, 240, 360, 90]},
                                  ui.VGroup([ui.Label({"ID": "Status", "Text": "Starting the bridge render..."}),
                                             ui.Button({"ID": "Cancel", "Text": "Cancel"})]))
    items = window.GetItems()
    cancel = threading.Event()
    state: Dict[str, Any] = {"done": 0, "total": 0, "frame": None, "result": None, "error": None, "over": False}

    def progress(done: int, total: int, result: Any) -> None:
        state.update(done=done, total=total, frame=getattr(result, "frame", None))

    def worker() -> None:
        try:
            state["result"] = work(progress, cancel)
        except BaseException as error:  # handed to Fusion's thread below
            state["error"] = error
        finally:
            state["over"] = True

    def on_cancel(event: Any) -> None:
        cancel.set()
        items["Status"].Text = "Cancelling after the frames in flight..."

    def on_tick(event: Any) -> None:
        if state["over"]:
            timer.Stop()
            dispatcher.ExitLoop()
        elif not cancel.is_set() and state["total"]:
            items["Status"].Text = f"Frame {state['frame']}: {state['done']} of {state['total']}"

    timer = ui.Timer({"ID": "RVMTick", "Interval": 100})
    window.On.Cancel.Clicked = on_cancel
    window.On.RVMProgress.Close = on_cancel
    dispatcher.On.RVMTick.Timeout = on_tick
    thread = threading.Thread(target=worker, name="rvm-matte-render", daemon=True)
    window.Show()
    thread.start()
    timer.Start()
    dispatcher.RunLoop()
    thread.join()
    window.Hide()
    if state["error"] is not None:
        raise state["error"]
    return state["result"]
