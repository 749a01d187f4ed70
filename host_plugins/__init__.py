"""Host plug-ins: thin glue for Nuke and DaVinci Resolve."""
