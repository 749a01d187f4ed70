"""Fusion's UIManager and ``bmd.UIDispatcher`` (Fusion's UI scripting: ``ui:VGroup``,
``ui:LineEdit{ID=...}``, ``disp:AddWindow(props, layout)``, ``win:GetItems()``,
``win.On.<ID>.Clicked = fn``, ``disp.On.<timer ID>.Timeout``, ``disp:RunLoop()`` /
``disp:ExitLoop()``, ``ui:Timer{ID, Interval}``), driven by a scripted ``Artist``.

``RunLoop`` does what the real event loop does for these windows: it delivers the artist's
clicks and the timer's ticks to the handlers the script assigned, until a handler calls
``ExitLoop``. The artist fills the settings dialog and presses OK or Cancel, and may press
Cancel in the progress window once it shows a given number of frames done. Unknown element
kinds, properties read that the element lacks, and events with no handler raise StandInError.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Dict, List, Optional

from .fusion import StandInError

ELEMENTS = {"VGroup", "HGroup", "Label", "LineEdit", "ComboBox", "Button", "CheckBox", "TextEdit", "SpinBox"}


class Artist:
    """What the person at the desk does: ``answers`` by element ID (LineEdit text, ComboBox
    choice), ``press`` ("OK" or "Cancel") in the settings window, and ``cancel_after`` frames
    done in the progress window (None: never)."""

    def __init__(self, answers: Optional[Dict[str, str]] = None, press: str = "OK",
                 cancel_after: Optional[int] = None) -> None:
        self.answers = dict(answers or {})
        self.press = press
        self.cancel_after = cancel_after
        self.seen: List[str] = []  # window IDs shown, in order
        self.progress_lines: List[str] = []


class Element:
    def __init__(self, kind: str, props: Any) -> None:
        if isinstance(props, list):
            self.children, props = props, {}
        else:
            self.children = list(props.pop("Children", [])) if isinstance(props, dict) else []
        self.kind = kind
        self.props = dict(props or {})
        self.items: List[str] = []
        self.index = 0

    # the properties a script reads and writes
    @property
    def Text(self) -> str:
        if self.kind not in ("LineEdit", "Label", "Button", "TextEdit"):
            raise StandInError(f"a {self.kind} has no Text")
        return str(self.props.get("Text", ""))

    @Text.setter
    def Text(self, value: str) -> None:
        self.props["Text"] = value

    @property
    def CurrentText(self) -> str:
        if self.kind != "ComboBox":
            raise StandInError(f"a {self.kind} has no CurrentText")
        return self.items[self.index] if self.items else ""

    def AddItems(self, items: List[str]) -> None:
        if self.kind != "ComboBox":
            raise StandInError(f"a {self.kind} has no AddItems")
        self.items.extend(str(item) for item in items)

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


class UIManager:
    def __init__(self, artist: Artist) -> None:
        self.artist = artist

    def __getattr__(self, kind: str) -> Callable[..., Element]:
        if kind not in ELEMENTS:
            raise StandInError(f"UIManager has no element {kind!r}")
        return lambda props=None: Element(kind, props if props is not None else {})

    def Timer(self, props: Dict[str, Any]) -> Timer:
        return Timer(props)


class Timer:
    def __init__(self, props: Dict[str, Any]) -> None:
        self.id = props["ID"]
        self.interval = float(props.get("Interval", 1000)) / 1000.0
        self.running = False

    def Start(self) -> None:
        self.running = True

    def Stop(self) -> None:
        self.running = False


class Events:
    """``On``: ``On.<ID>.<Event> = handler`` (the attribute chain the real dispatcher offers)."""

    def __init__(self) -> None:
        object.__setattr__(self, "targets", {})

    def __getattr__(self, element_id: str) -> Target:
        return self.targets.setdefault(element_id, Target())


class Target:
    def __init__(self) -> None:
        object.__setattr__(self, "handlers", {})

    def __setattr__(self, event: str, handler: Callable[[Any], None]) -> None:
        if event not in ("Clicked", "Close", "Timeout", "TextChanged", "CurrentIndexChanged"):
            raise StandInError(f"no event {event!r}")
        self.handlers[event] = handler

    def fire(self, event: str) -> None:
        handler = self.handlers.get(event)
        if handler is None:
            raise StandInError(f"the script left {event} unhandled")
        handler({"what": event})


class Window:
    def __init__(self, props: Dict[str, Any], layout: Element) -> None:
        self.id = props["ID"]
        self.props = props
        self.layout = layout
        self.On = Events()
        self.shown = False

    def GetItems(self) -> Dict[str, Element]:
        return {element.props["ID"]: element for element in self.layout.walk() if "ID" in element.props}

    def Show(self) -> None:
        self.shown = True

    def Hide(self) -> None:
        self.shown = False


class Dispatcher:
    def __init__(self, ui: UIManager) -> None:
        self.ui = ui
        self.On = Events()
        self.windows: List[Window] = []
        self.looping = False

    def AddWindow(self, props: Dict[str, Any], layout: Element) -> Window:
        window = Window(props, layout)
        self.windows.append(window)
        return window

    def ExitLoop(self) -> None:
        self.looping = False

    def RunLoop(self) -> None:
        artist = self.ui.artist
        window = [w for w in self.windows if w.shown][-1]
        artist.seen.append(window.id)
        self.looping = True
        if window.id == "RVMMatte":
            self._fill(window)
            window.On.targets[artist.press].fire("Clicked")
            return
        cancelled = False
        deadline = time.monotonic() + 300
        while self.looping and time.monotonic() < deadline:
            time.sleep(0.05)
            self.On.targets["RVMTick"].fire("Timeout")
            status = window.GetItems()["Status"].Text
            if not artist.progress_lines or artist.progress_lines[-1] != status:
                artist.progress_lines.append(status)
            done = re.search(r": (\d+) of \d+", status)
            if (not cancelled and artist.cancel_after is not None and done and
                    int(done.group(1)) >= artist.cancel_after):
                cancelled = True
                window.On.targets["Cancel"].fire("Clicked")
        if self.looping:
            raise StandInError("the progress window never closed")

    def _fill(self, window: Window) -> None:
        items = window.GetItems()
        for key, value in self.ui.artist.answers.items():
            element = items[key]
            if element.kind == "ComboBox":
                if value not in element.items:
                    if not element.props.get("Editable"):
                        raise StandInError(f"{key} offers {element.items}, not {value!r}")
                    element.items.append(value)
                element.index = element.items.index(value)
            else:
                element.Text = value


class Bmd:
    """The ``bmd`` module scripts get: ``UIDispatcher(ui)`` and ``scriptapp("Resolve")``."""

    def __init__(self, resolve: Any = None) -> None:
        self.resolve = resolve
        self.dispatchers: List[Dispatcher] = []

    def UIDispatcher(self, ui: UIManager) -> Dispatcher:
        dispatcher = Dispatcher(ui)
        self.dispatchers.append(dispatcher)
        return dispatcher

    def scriptapp(self, name: str) -> Any:
        if name != "Resolve":
            raise StandInError(f"scriptapp({name!r}): the stand-in offers Resolve only")
        return self.resolve
