"""DaVinci Resolve and Fusion glue: the "RVM Matte" scripts of Workspace > Scripts.

``scripts/`` holds the files Resolve lists in its menu (``Comp/RVM Matte.py`` for the Fusion page,
``Utility/RVM Matte.py`` for every page, ``Comp/RVM Matte (Lua).lua`` for editions that cannot run
Python from the menu). They find this package and the client through ``bootstrap``; everything
else here is host glue: reading the comp or the Media Pool, asking the artist, wiring Loaders,
importing plates. No model or protocol logic (that is the bridge's). Python 3.7+, standard
library only, except what ``bootstrap`` loads (the client unit and pyzmq).
"""
