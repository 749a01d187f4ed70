# Our typed interface of the Fusion calls the scripts make (fusionscript-stubs leaves Fusion and
# FusionComp empty). Type checking only: nothing imports this at run time. Each call is traced to
# Blackmagic's Fusion Scripting Guide (Fusion 8, the last full reference; names unchanged since)
# or the Resolve scripting README; docs/resolve.md lists which were confirmed where.
from typing import Any, Callable, Dict, List, Optional, Protocol

PerClip = Dict[float, Any]  # Fusion's per-clip attribute tables: {1.0: value}

class Tool(Protocol):
    Name: str  # Operator.Name (read only)
    def GetAttrs(self) -> Dict[str, Any]: ...  # Operator:GetAttrs(): TOOLS_Name, TOOLS_RegID, TOOLST_Clip_Name ...
    def SetAttrs(self, attrs: Dict[str, Any]) -> None: ...  # Operator:SetAttrs({TOOLS_Name = ...})
    def GetInput(self, name: str, time: float = ...) -> Any: ...  # Operator:GetInput(id, [time])
    def SetInput(self, name: str, value: Any, time: float = ...) -> None: ...  # Operator:SetInput(id, value, [time])
    def ConnectInput(self, name: str, source: Optional[Tool]) -> bool: ...  # Operator:ConnectInput(id, tool)
    def Delete(self) -> None: ...  # Operator:Delete()

class Comp(Protocol):
    CurrentTime: float  # Composition.CurrentTime
    ActiveTool: Optional[Tool]  # Composition.ActiveTool
    def GetToolList(self, selected: bool = ..., tool_type: str = ...) -> Dict[float, Tool]: ...
    def FindTool(self, name: str) -> Optional[Tool]: ...  # Composition:FindTool(name)
    def AddTool(self, tool_id: str, x: int = ..., y: int = ...) -> Tool: ...  # Composition:AddTool(id, [x, y])
    def GetAttrs(self) -> Dict[str, Any]: ...  # COMPN_RenderStart, COMPN_RenderEnd, COMPS_FileName
    def Lock(self) -> None: ...
    def Unlock(self) -> None: ...
    def StartUndo(self, name: str) -> None: ...
    def EndUndo(self, keep: bool) -> None: ...
    def Render(self, settings: Dict[str, Any]) -> bool: ...  # Composition:Render({Start, End, Tool, Wait})
    def AskUser(self, title: str, controls: Dict[float, Dict[Any, Any]]) -> Optional[Dict[str, Any]]: ...
    def MapPath(self, path: str) -> str: ...  # Composition:MapPath(path): Comp:, Footage: ... expanded

class UIItem(Protocol):
    Text: str  # LineEdit.Text, Label.Text
    CurrentText: str  # ComboBox.CurrentText
    def AddItems(self, items: List[str]) -> None: ...

class Handlers(Protocol):
    def __getattr__(self, name: str) -> Any: ...  # win.On.<ID>.Clicked = function

class Window(Protocol):
    On: Handlers
    def GetItems(self) -> Dict[str, UIItem]: ...
    def Show(self) -> None: ...
    def Hide(self) -> None: ...

class Timer(Protocol):
    def Start(self) -> None: ...
    def Stop(self) -> None: ...

class UIManager(Protocol):
    def __getattr__(self, name: str) -> Callable[..., Any]: ...  # ui.VGroup, ui.HGroup, ui.Label, ui.LineEdit ...
    def Timer(self, props: Dict[str, Any]) -> Timer: ...

class Dispatcher(Protocol):
    On: Handlers
    def AddWindow(self, props: Dict[str, Any], layout: Any) -> Window: ...
    def RunLoop(self) -> None: ...
    def ExitLoop(self) -> None: ...

class Bmd(Protocol):
    def UIDispatcher(self, ui: UIManager) -> Dispatcher: ...
    def scriptapp(self, name: str) -> Any: ...

class Fusion(Protocol):
    UIManager: Optional[UIManager]  # None (or missing) where the edition has no UIManager
    CurrentComp: Comp
    def GetVersion(self) -> Any: ...  # {1.0: major, 2.0: minor, ...}
