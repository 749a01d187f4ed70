"""What both menu scripts do once they have found this package: load the client and pyzmq,
pick the host objects Resolve or Fusion put in the script's globals, and run one script."""

from typing import Any, Dict


def run(script: str, scope: Dict[str, Any]) -> int:
    """Run ``"comp"`` (Fusion page: the selected Loader or MediaIn), ``"try_ratios"`` (Fusion
    page: the downsample ratios on the selected Loader's sequence) or ``"media_pool"`` (every
    page: Media Pool clips or the timeline clip) with the ``fusion``/``fu``, ``comp``, ``bmd`` and
    ``resolve`` objects found in ``scope``, the menu script's globals. Returns its exit status."""
    from . import bootstrap

    bootstrap.prepare()
    fu: Any = scope.get("fusion") or scope.get("fu")  # None only outside Fusion; main says so
    bmd_module = scope.get("bmd")
    resolve_app = scope.get("resolve")
    if resolve_app is None and bmd_module is not None:
        resolve_app = bmd_module.scriptapp("Resolve")
    if script in ("comp", "try_ratios"):
        from . import comp_matte

        current = scope.get("comp") or (fu.CurrentComp if fu is not None else None)
        return comp_matte.main(fu, current, bmd=bmd_module, resolve=resolve_app, script=script)
    from . import media_pool

    return media_pool.main(resolve_app, fusion=fu, bmd=bmd_module)
