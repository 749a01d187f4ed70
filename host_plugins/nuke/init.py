# RVMMatte plug-in start-up (Nuke runs this for every folder on NUKE_PATH, in the GUI, under
# nuke -t and on render nodes with nuke -x). It puts the plug-in's python/ folder and the pyzmq
# unpacked for this Nuke's Python on sys.path (a zmq Nuke can already import is kept), then
# registers RVMMatte's callbacks so saved scripts and farm renders work without menu.py.
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_python = os.path.join(_here, "python")
if _python not in sys.path:
    sys.path.insert(0, _python)

import rvm_bridge_paths  # noqa: E402

RVM_ZMQ = rvm_bridge_paths.add_zmq(os.path.join(_here, "wheels"))

import rvm_matte.callbacks  # noqa: E402

rvm_matte.callbacks.register()
