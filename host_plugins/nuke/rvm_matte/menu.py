"""The toolbar entry (Nodes > RVM > RVMMatte), which the Tab menu lists too."""

from typing import Any

import nuke

from .bridge import load_client


def add_menus(toolbar: Any) -> None:
    toolbar.addMenu("RVM").addCommand("RVMMatte", "import rvm_matte.menu; rvm_matte.menu.create_from_menu()")


def create_from_menu() -> None:
    """Make an RVMMatte; without pyzmq for this Nuke it still appears and says why it cannot render."""
    from . import node

    client, problem = load_client()
    group = node.create(client)
    if problem:
        node.show_state(group, problem, stale=True)
        if nuke.GUI:
            nuke.message(problem)
