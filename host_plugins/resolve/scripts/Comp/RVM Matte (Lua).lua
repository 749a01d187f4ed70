-- RVM Matte (Lua): the Fusion page script for editions whose Workspace > Scripts menu runs only
-- Lua (the free DaVinci Resolve from 21.1). It reads the selected Loader's or MediaIn's clip,
-- runs `rvm-bridge fusion-matte` (the bridge's own command line: it works out the frames and
-- plates with the Python script's functions and renders through the running bridge), then wires
-- the same Loaders and MatteControl as the Python script, as one undo step. No model or
-- protocol logic here. Lua 5.1 / LuaJIT, as Fusion embeds.
--
-- The command is $RVM_BRIDGE_COMMAND, else the first line of ../rvm_bridge/command.txt (written
-- by `rvm-bridge install resolve`), else `rvm-bridge` on the PATH.

local MATTE_CONTROL = { { "MatteCombine", 4 }, { "CombineOp", 0 }, { "PostMultiplyImage", 1 } }
local UNDO_NAME = "RVM Matte"

local function say(text)
  print("RVM Matte: " .. text)
end

local WINDOWS = package.config:sub(1, 1) == "\\"

local function quote(text)
  text = tostring(text)
  if WINDOWS then
    -- cmd.exe has no escape for a quote inside quotes (\" would end the quoting and let & or |
    -- run a command); no Windows path, server address or frame range holds one.
    return '"' .. (text:gsub('"', "")) .. '"'
  end
  return "'" .. (text:gsub("'", "'\\''")) .. "'"
end

-- The line for io.popen / os.execute: cmd.exe /c strips the first and last quote of a line that
-- starts with one ("C:\Program Files\...\rvm-bridge.exe" ... "plates"), so wrap it whole.
local function shell_line(command)
  if WINDOWS then
    return '"' .. command .. '"'
  end
  return command
end

local function script_folder()
  local info = debug.getinfo(1, "S")
  local source = info and info.source or ""
  if source:sub(1, 1) == "@" then
    return source:sub(2):match("^(.*)[/\\][^/\\]*$")
  end
  return nil
end

local function bridge_command()
  local command = os.getenv("RVM_BRIDGE_COMMAND")
  if command and command ~= "" then
    return command
  end
  local here = script_folder()
  if here then
    local handle = io.open(here .. "/../rvm_bridge/command.txt", "r")
    if handle then
      local line = handle:read("*l")
      handle:close()
      if line and line ~= "" then
        return line
      end
    end
  end
  return "rvm-bridge"
end

local function first_clip(value)
  if type(value) == "table" then
    return value[1]
  end
  return value
end

local function selected_tool(c)
  local tool = c.ActiveTool
  if tool then
    local id = tool:GetAttrs().TOOLS_RegID
    if id == "Loader" or id == "MediaIn" then
      return tool
    end
  end
  local found = nil
  for _, candidate in pairs(c:GetToolList(true)) do
    local id = candidate:GetAttrs().TOOLS_RegID
    if id == "Loader" or id == "MediaIn" then
      if found then
        return nil, "select only one Loader or MediaIn."
      end
      found = candidate
    end
  end
  if not found then
    return nil, "select a Loader or a MediaIn in the Flow first (the matte is made for the selected tool's clip)."
  end
  return found
end

local function edition_line(app)
  if not app then
    return nil
  end
  local version = app:GetVersion() or {}
  return string.format("%s %s.%s.%s: running the Lua launcher (Python scripts from this menu need Studio, or a "
    .. "free edition before 21.1)", tostring(app:GetProductName()), tostring(version[1] or 0),
    tostring(version[2] or 0), tostring(version[3] or 0))
end

-- The facts the command needs, as command-line arguments.
local function clip_arguments(c, tool, app)
  local attrs = tool:GetAttrs()
  local name = attrs.TOOLS_Name
  if attrs.TOOLS_RegID == "Loader" then
    local clip = first_clip(attrs.TOOLST_Clip_Name)
    if not clip or clip == "" then
      return nil, name .. " has no clip; choose its file first."
    end
    if clip:match("^%a[%w_]+:") then -- a Fusion path map (Comp:, Footage:), not a drive letter
      clip = c:MapPath(clip)
    end
    for _, mode in ipairs({ "Reverse", "Loop", "HoldFirstFrame", "HoldLastFrame" }) do
      local on = tool:GetInput(mode)
      if on and on ~= 0 then
        return nil, name .. " has " .. mode .. " on, so its files do not play in order; the Lua launcher mattes "
          .. "a sequence in file order only (turn " .. mode .. " off, or render the Loader to EXRs with a Saver "
          .. "and matte those)."
      end
    end
    local args = { "--clip", quote(clip), "--trim-in", tostring(first_clip(attrs.TOOLIT_Clip_TrimIn) or 0),
      "--comp-start", tostring(tool:GetInput("GlobalIn") or 0), "--tool", quote(name) }
    local initial = first_clip(attrs.TOOLIT_Clip_InitialFrame)
    if initial then
      table.insert(args, "--initial")
      table.insert(args, tostring(initial))
    end
    local trim_out = first_clip(attrs.TOOLIT_Clip_TrimOut)
    if trim_out then
      table.insert(args, "--trim-out")
      table.insert(args, tostring(trim_out))
    end
    return table.concat(args, " ")
  end
  if not app then
    return nil, name .. " is a MediaIn, which only Resolve can trace to a file."
  end
  local timeline = app:GetProjectManager():GetCurrentProject():GetCurrentTimeline()
  local item = timeline and timeline:GetCurrentVideoItem()
  local pool_item = item and item:GetMediaPoolItem()
  if not pool_item then
    return nil, name .. " has no Media Pool clip behind it; matte the media it was made from instead."
  end
  local ok, start = pcall(function() return item:GetSourceStartFrame() end)
  if not ok or start == nil then
    start = item:GetLeftOffset(false)
  end
  return table.concat({ "--file-path", quote(pool_item:GetClipProperty("File Path") or ""),
    "--source-start", tostring(start), "--duration", tostring(item:GetDuration(false)),
    "--comp-start", tostring(c:GetAttrs().COMPN_RenderStart or 0), "--tool", quote(name) }, " ")
end

local function ask(c)
  local server = os.getenv("RVM_BRIDGE_ADDRESS") or "tcp://127.0.0.1:5701"
  local answer = { ["Server"] = server, ["Model"] = "mobilenetv3", ["Downsample ratio"] = "auto", ["Frames"] = "",
    ["Plates folder"] = "" }
  if c.AskUser then
    local given = c:AskUser("RVM Matte", {
      { "Server", "Text", Default = server, Lines = 1 },
      { "Model", "Text", Default = "mobilenetv3", Lines = 1 },
      { "Downsample ratio", "Text", Default = "auto", Lines = 1 },
      { "Frames", "Text", Default = "", Lines = 1 },
      { "Plates folder", "Text", Default = "", Lines = 1 },
    })
    if given == nil then
      return nil
    end
    for key, value in pairs(given) do
      answer[key] = value
    end
  else
    say("no dialog in this edition; using server " .. server .. ", mobilenetv3, downsample auto, the clip's frames")
  end
  local args = { "--server", quote(answer["Server"]), "--variant", quote(answer["Model"]),
    "--downsample-ratio", quote(answer["Downsample ratio"]) }
  if answer["Frames"] ~= "" then
    table.insert(args, "--frames")
    table.insert(args, quote(answer["Frames"]))
  end
  if answer["Plates folder"] ~= "" then
    table.insert(args, "--plates-folder")
    table.insert(args, quote(answer["Plates folder"]))
  end
  return table.concat(args, " ")
end

-- Each output line of `command`, as it comes (io.popen); a Lua built without popen runs it to a
-- temporary file and reads that afterwards.
local function each_line(command, handle_line)
  local ok, pipe = pcall(io.popen, shell_line(command .. " 2>&1"), "r")
  if ok and pipe then
    for line in pipe:lines() do
      handle_line(line)
    end
    pipe:close()
    return true
  end
  local log = os.tmpname()
  os.execute(shell_line(command .. " > " .. quote(log) .. " 2>&1"))
  local handle = io.open(log, "r")
  if not handle then
    return false
  end
  for line in handle:lines() do
    handle_line(line)
  end
  handle:close()
  os.remove(log)
  return true
end

local function run_command(command)
  local result = { plates = {} }
  local started = each_line(command, function(line)
    local kind, rest = line:match("^(RVM_%u+)%s*(.*)$")
    if kind == "RVM_PROGRESS" then
      local done, total, frame = rest:match("^(%d+)%s+(%d+)%s+(%-?%d+)$")
      say("frame " .. tostring(frame) .. " (" .. tostring(done) .. "/" .. tostring(total) .. ")")
    elseif kind == "RVM_PLATE" then
      local role, path = rest:match("^(%S+)%s+(.+)$")
      result.plates[role] = path
    elseif kind == "RVM_RANGE" then
      local first, last, global_in = rest:match("^(%-?%d+)%s+(%-?%d+)%s+(%-?%d+)$")
      result.first, result.last, result.global_in = tonumber(first), tonumber(last), tonumber(global_in)
    elseif kind == "RVM_ERROR" then
      result.error = rest
    elseif kind == "RVM_DONE" then
      result.done = rest
    else
      print(line)
    end
  end)
  if not started then
    return nil, "RVM Matte: could not run " .. command
  end
  if result.error then
    return nil, result.error
  end
  if not (result.plates.alpha and result.plates.foreground and result.first and result.done) then
    return nil, "RVM Matte: `" .. command .. "` did not finish (see the lines above); is rvm-bridge installed?"
  end
  return result
end

local function named_tool(c, tool_id, name)
  local tool = c:FindTool(name)
  if tool then
    return tool
  end
  tool = c:AddTool(tool_id, -32768, -32768)
  tool:SetAttrs({ TOOLS_Name = name })
  return tool
end

local function wire(c, source_name, result)
  local count = result.last - result.first + 1
  local loaders = {}
  for _, role in ipairs({ "alpha", "foreground" }) do
    local suffix = role == "alpha" and "Alpha" or "Foreground"
    local loader = named_tool(c, "Loader", "RVM_" .. source_name .. "_" .. suffix)
    loader:SetInput("Clip", result.plates[role])
    loader:SetInput("GlobalIn", result.global_in)
    loader:SetInput("GlobalOut", result.global_in + count - 1)
    loaders[role] = loader
  end
  local matte = named_tool(c, "MatteControl", "RVM_" .. source_name .. "_Matte")
  matte:ConnectInput("Background", loaders.foreground)
  matte:ConnectInput("Foreground", loaders.alpha)
  for _, pair in ipairs(MATTE_CONTROL) do
    matte:SetInput(pair[1], pair[2])
  end
end

local function main()
  local fu_app = fusion or fu
  local c = comp or (fu_app and fu_app.CurrentComp)
  if not c then
    say("open a comp on the Fusion page first.")
    return 1
  end
  local app = resolve
  if not app and Resolve then
    app = Resolve()
  end
  local line = edition_line(app)
  if line then
    say(line)
  end
  local tool, problem = selected_tool(c)
  if not tool then
    say(problem)
    return 1
  end
  local clip_args, why = clip_arguments(c, tool, app)
  if not clip_args then
    say(why)
    return 1
  end
  local settings = ask(c)
  if not settings then
    say("cancelled; nothing was changed.")
    return 2
  end
  local result, failure = run_command(bridge_command() .. " fusion-matte " .. clip_args .. " " .. settings)
  if not result then
    print(failure)
    return 1
  end
  c:Lock()
  c:StartUndo(UNDO_NAME)
  local ok, err = pcall(wire, c, tool:GetAttrs().TOOLS_Name, result)
  c:EndUndo(true)
  c:Unlock()
  if not ok then
    say("could not wire the Loaders: " .. tostring(err))
    return 1
  end
  say(result.done)
  return 0
end

RVM_MATTE_STATUS = main()
