"""RVM Try Ratios (Fusion page, Workspace > Scripts > Comp): try the downsample ratios on the
selected Loader's sequence through the rvm-bridge server and load the contact sheet it writes.

Installed by `rvm-bridge install resolve` beside the rvm_bridge folder (see
rvm_bridge/resolve/bootstrap.py for the layout). Python 3.7+.
"""

import os
import sys

PACKAGE = "rvm_bridge"


def _scripts_folder():
    """Fusion/Scripts: the parent of this script's menu folder, or $RVM_BRIDGE_SCRIPTS."""
    candidates = [os.environ.get("RVM_BRIDGE_SCRIPTS", "")]
    here = globals().get("__file__")
    if here:
        candidates.append(os.path.dirname(os.path.dirname(os.path.abspath(here))))
    for folder in candidates:
        if folder and os.path.isdir(os.path.join(folder, PACKAGE)):
            return folder
    return ""


def _main():
    folder = _scripts_folder()
    if not folder:
        print("RVM Matte: the rvm_bridge folder is missing beside the Comp and Utility script folders; "
              "run `rvm-bridge install resolve` in a terminal, then run the script again.")
        return 1
    if folder not in sys.path:
        sys.path.insert(0, folder)
    from rvm_bridge.resolve import entry
    return entry.run("try_ratios", globals())


RVM_MATTE_STATUS = _main()
