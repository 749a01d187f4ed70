"""Stand-ins for DaVinci Resolve's and Fusion's scripting objects, as the RVM Matte scripts use them.

Not mocks: stateful objects that keep a comp's tools, their inputs and connections, an undo
history, a Media Pool's bins, clips and clip mattes, and that do the work the real call does
(a Saver writes real EXRs, ``ImportMedia`` checks the files are there). Each class and method
says which documented behaviour it imitates: Blackmagic's scripting README (the Resolve API,
as typed by ``fusionscript-stubs``) and the Fusion Scripting Guide (Fusion 8, the last full
reference of Composition and Operator). They refuse what the real API lacks: an unknown
attribute, method, tool ID or input ID raises ``StandInError`` (an AttributeError), so a typo
in a script fails here as it would in Resolve.
"""

from .fusion import Comp, Fusion, StandInError, Tool
from .resolve_app import MediaPool, MediaPoolItem, Resolve, TimelineItem
from .ui import Artist, Bmd, UIManager

__all__ = ["Artist", "Bmd", "Comp", "Fusion", "MediaPool", "MediaPoolItem", "Resolve", "StandInError",
           "TimelineItem", "Tool", "UIManager"]
