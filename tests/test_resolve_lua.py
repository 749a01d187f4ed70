"""Comp > RVM Matte (Lua), for editions whose menu runs only Lua: the launcher runs under a real
Lua 5.1 and a real LuaJIT (both from the ``lupa`` package), against a Lua stand-in of the Fusion
calls it makes, runs the real ``rvm-bridge fusion-matte`` command (the line the installer wrote in
command.txt) against a real bridge, and wires exactly what the Python script wires."""

from __future__ import annotations

import importlib
import os

import pytest

from .resolve_support import COUNT, REPO, run_script, scope_for
from .standins.resolve import Artist, Bmd, Comp, Fusion, Resolve, UIManager
from .test_server_support import FIRST

STANDIN = os.path.join(REPO, "tests", "standins", "resolve", "fusion_standin.lua")


def plain(value):
    """Lua tables and Python dicts alike as plain, comparable Python data."""
    if hasattr(value, "items") and not isinstance(value, dict):
        value = dict(value.items())
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


def lua_runtime(name: str):
    module = importlib.import_module(f"lupa.{name}")  # lupa ships these interpreters; no skip
    return module.LuaRuntime(unpack_returned_tuples=True)


@pytest.mark.parametrize("interpreter", ["lua51", "luajit21"])
def test_the_lua_launcher_wires_the_same_loaders_as_the_python_script(bridge_env, interpreter, monkeypatch, capfd):
    show = bridge_env
    folder = os.path.join(show["root"], f"lua_{interpreter}")
    frames = f"{FIRST}-{FIRST + 3}"
    plate = os.path.join(show["root"], "sh010", f"plate.{FIRST}.exr")

    # The Python script on Studio, for the reference wiring.
    comp = Comp(render_start=0, render_end=COUNT - 1)
    loader = comp.add_loader(plate, global_in=5)
    resolve = Resolve("DaVinci Resolve Studio", (21, 1, 0))
    fusion = Fusion(comp, UIManager(Artist({"Frames": frames, "Folder": folder})), (21, 1, 0))
    assert run_script(show["comp_script"], **scope_for(fusion, comp, Bmd(resolve), resolve)) == 0
    expected = plain(comp.snapshot())

    # The Lua launcher on the free edition, the same Loader, the artist answering AskUser alike.
    lua = lua_runtime(interpreter)
    standin = lua.execute(open(STANDIN, encoding="utf-8").read())
    asked = []

    def ask_user(title, controls):
        asked.append([control[1] for control in controls.values()])
        return lua.table_from({"Server": show["server"].address, "Model": "mobilenetv3", "Downsample ratio": "auto",
                               "Frames": frames, "Plates folder": folder})

    spec = lua.table_from({"tools": [{"id": "Loader", "name": "Loader1", "attrs": loader.GetAttrs(),
                                      "inputs": {"Clip": plate, "GlobalIn": 5}, "selected": True}],
                           "render_start": 0, "render_end": COUNT - 1}, recursive=True)
    spec["ask_user"] = ask_user
    lua_comp = standin.comp(spec)
    scope = lua.globals()
    scope.comp = lua_comp
    scope.resolve = standin.resolve("DaVinci Resolve", lua.table_from([21, 1, 0]))
    # The command comes from rvm_bridge/command.txt, as the installer wrote it (this Python -m bridge_server).
    monkeypatch.delenv("RVM_BRIDGE_COMMAND", raising=False)
    monkeypatch.setenv("PYTHONPATH", REPO)
    for name in [name for name in os.listdir(folder)]:
        os.remove(os.path.join(folder, name))  # the Lua run makes its own plates
    scope.dofile(show["lua_launcher"])

    out = capfd.readouterr().out
    assert scope.RVM_MATTE_STATUS == 0, out
    assert "DaVinci Resolve 21.1.0: running the Lua launcher" in out
    assert f"frame {FIRST + 3} (4/4)" in out and "wrote 4 frames through" in out
    assert asked == [["Server", "Model", "Downsample ratio", "Frames", "Plates folder"]]
    report = plain(lua_comp.snapshot(lua_comp, "RVM_"))
    assert report["tools"] == expected
    assert (report["groups"], report["loose"], report["locks"]) == (1.0, 0.0, 0.0)
    assert sorted(os.listdir(folder)) == sorted(
        [f"plate_alpha.{frame}.exr" for frame in range(FIRST, FIRST + 4)] +
        [f"plate_fg.{frame}.exr" for frame in range(FIRST, FIRST + 4)])


def test_the_lua_launcher_says_when_nothing_is_selected(capfd):
    lua = lua_runtime("lua51")
    standin = lua.execute(open(STANDIN, encoding="utf-8").read())
    scope = lua.globals()
    scope.comp = standin.comp(lua.table_from({"tools": []}, recursive=True))
    scope.dofile(os.path.join(REPO, "host_plugins", "resolve", "scripts", "Comp", "RVM Matte (Lua).lua"))
    assert scope.RVM_MATTE_STATUS == 1
    assert "select a Loader or a MediaIn in the Flow first" in capfd.readouterr().out


@pytest.mark.parametrize("interpreter", ["lua51", "luajit21"])
def test_the_lua_launcher_refuses_a_loader_played_in_reverse_rather_than_misalign_the_matte(interpreter, capfd):
    # The Lua launcher reads the files in order; a reversed (looped, held) Loader shows them
    # otherwise, so its matte would run against the picture. It says so and changes nothing.
    lua = lua_runtime(interpreter)
    standin = lua.execute(open(STANDIN, encoding="utf-8").read())
    clip = os.path.join(REPO, "missing", f"plate.{FIRST}.exr")
    spec = lua.table_from({"tools": [{"id": "Loader", "name": "Loader1",
                                      "attrs": {"TOOLST_Clip_Name": {1: clip}, "TOOLIT_Clip_TrimIn": {1: 0}},
                                      "inputs": {"Clip": clip, "GlobalIn": 0, "Reverse": 1}, "selected": True}]},
                          recursive=True)
    lua_comp = standin.comp(spec)
    scope = lua.globals()
    scope.comp = lua_comp
    scope.dofile(os.path.join(REPO, "host_plugins", "resolve", "scripts", "Comp", "RVM Matte (Lua).lua"))
    assert scope.RVM_MATTE_STATUS == 1
    assert "Loader1 has Reverse on, so its files do not play in order" in capfd.readouterr().out
    assert plain(lua_comp.snapshot(lua_comp, "RVM_"))["tools"] == {}


def test_the_lua_launcher_expands_the_comp_path_map_of_a_loaders_clip(bridge_env, monkeypatch, capfd):
    show = bridge_env
    folder = os.path.join(show["root"], "lua_mapped")
    lua = lua_runtime("luajit21")
    standin = lua.execute(open(STANDIN, encoding="utf-8").read())
    clip = f"Comp:/plate.{FIRST}.exr"
    spec = lua.table_from({"tools": [{"id": "Loader", "name": "Loader1",
                                      "attrs": {"TOOLST_Clip_Name": {1: clip}, "TOOLIT_Clip_TrimIn": {1: 0}},
                                      "inputs": {"Clip": clip, "GlobalIn": 0}, "selected": True}],
                           "file_name": os.path.join(show["root"], "sh010", "sh010.comp")}, recursive=True)
    spec["ask_user"] = lambda title, controls: lua.table_from(
        {"Server": show["server"].address, "Model": "mobilenetv3", "Downsample ratio": "auto",
         "Frames": f"{FIRST}-{FIRST + 1}", "Plates folder": folder})
    lua_comp = standin.comp(spec)
    scope = lua.globals()
    scope.comp = lua_comp
    monkeypatch.delenv("RVM_BRIDGE_COMMAND", raising=False)  # the installed command.txt
    monkeypatch.setenv("PYTHONPATH", REPO)
    scope.dofile(show["lua_launcher"])

    out = capfd.readouterr().out
    assert scope.RVM_MATTE_STATUS == 0, out
    tools = plain(lua_comp.snapshot(lua_comp, "RVM_"))["tools"]
    assert tools["RVM_Loader1_Alpha"]["inputs"]["Clip"] == os.path.join(folder, f"plate_alpha.{FIRST}.exr")


@pytest.mark.parametrize("interpreter", ["lua51", "luajit21"])
def test_on_windows_the_command_line_survives_cmd_exe_and_a_typed_quote_runs_nothing(interpreter, monkeypatch,
                                                                                       capfd):
    # Fusion's io.popen on Windows runs `cmd.exe /c LINE`; cmd strips the first and last quote of
    # a line starting with one, so a quoted rvm-bridge.exe under "C:\Program Files" must be wrapped
    # whole. A quote typed in the dialog must not end the quoting (cmd has no \" escape) and let
    # "& calc" run.
    lua = lua_runtime(interpreter)
    standin = lua.execute(open(STANDIN, encoding="utf-8").read())
    lua.execute('package.config = "\\\\\\n;\\n?\\n!\\n-\\n"')
    lines = lua.execute("""
        local lines = {}
        os.execute = function(command) lines[#lines + 1] = command; return 1 end  -- never a real shell here
        io.popen = function(command, mode)
          lines[#lines + 1] = command
          local done = false
          return { lines = function() return function()
                     if done then return nil end
                     done = true
                     return "RVM_ERROR RVM Matte: stopped here"
                   end end,
                   close = function() end }
        end
        return lines""")
    clip = "C:\\shots\\sh010 final\\plate.1001.exr"
    spec = lua.table_from({"tools": [{"id": "Loader", "name": "Loader1",
                                      "attrs": {"TOOLST_Clip_Name": {1: clip}, "TOOLIT_Clip_TrimIn": {1: 0}},
                                      "inputs": {"Clip": clip, "GlobalIn": 0}, "selected": True}]}, recursive=True)
    spec["ask_user"] = lambda title, controls: lua.table_from(
        {"Server": "tcp://127.0.0.1:5701", "Model": "mobilenetv3", "Downsample ratio": "auto",
         "Frames": '1001" & calc & "', "Plates folder": ""})
    scope = lua.globals()
    scope.comp = standin.comp(spec)
    monkeypatch.setenv("RVM_BRIDGE_COMMAND", '"C:\\Program Files\\rvm-bridge\\rvm-bridge.exe"')
    scope.dofile(os.path.join(REPO, "host_plugins", "resolve", "scripts", "Comp", "RVM Matte (Lua).lua"))

    assert scope.RVM_MATTE_STATUS == 1 and "stopped here" in capfd.readouterr().out
    line = lines[1]
    assert len(lines) == 1 and line.startswith('""C:\\Program Files\\rvm-bridge\\rvm-bridge.exe" fusion-matte --clip '
                           '"C:\\shots\\sh010 final\\plate.1001.exr" ') and line.endswith(' 2>&1"'), line
    assert '--frames "1001 & calc & "' in line  # the & stay inside one quoted argument
