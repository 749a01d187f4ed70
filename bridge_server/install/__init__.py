"""Host installers: lay out a plug-in folder a host loads (Nuke, DaVinci Resolve).

``vendor`` is host-neutral: it copies the client unit, fetches or takes ``pyzmq`` wheels for
each Python a host runs, unpacks each into a per-platform, per-ABI folder and writes the small
path-picker host start-up code calls. ``nuke`` builds the Nuke plug-in folder on top of it,
``resolve`` the Resolve scripts' layout in a Fusion Scripts folder.
"""
