-- A Lua stand-in of the few Fusion calls the Lua launcher makes (Fusion Scripting Guide:
-- Composition.ActiveTool, Composition:GetToolList, FindTool, AddTool, GetAttrs, Lock, Unlock,
-- StartUndo, EndUndo, AskUser; Operator:GetAttrs, SetAttrs, GetInput, SetInput, ConnectInput;
-- Resolve:GetProductName, GetVersion), with the same behaviour as tests/standins/resolve/fusion.py:
-- tools named Loader1, Loader2 ..., per-clip attribute tables {[1] = value}, an undo history.
-- Reading a member the real objects lack is an error (the launcher's typo would fail here).

local StandIn = {}

local INPUTS = {
  Loader = { Clip = "string", GlobalIn = "number", GlobalOut = "number", TrimIn = "number", TrimOut = "number",
    Reverse = "number", Loop = "number", HoldFirstFrame = "number", HoldLastFrame = "number" },
  MediaIn = { GlobalIn = "number", GlobalOut = "number" },
  MatteControl = { Background = "image", Foreground = "image", MatteCombine = "number", CombineOp = "number",
    PostMultiplyImage = "number", Invert = "number" },
}

local function strict(object, kind)
  return setmetatable(object, {
    __index = function(_, key)
      error(kind .. " has no member " .. tostring(key) .. " in the real API", 2)
    end,
  })
end

local Tool = {}

local function make_tool(comp, id, name)
  if not INPUTS[id] then
    error("the stand-in knows no tool " .. tostring(id), 3)
  end
  local tool = { _comp = comp, _id = id, _name = name, _inputs = {}, _connections = {}, _attrs = {} }
  for key, method in pairs(Tool) do
    tool[key] = method
  end
  return strict(tool, "Operator")
end

local function edit(comp, what)
  if comp._undo then
    table.insert(comp._undo, what)
  else
    table.insert(comp._loose, what)
  end
end

local function check(tool, name, kind)
  local expected = INPUTS[tool._id][name]
  if not expected then
    error(tool._id .. " has no input " .. tostring(name), 3)
  end
  if kind == "image" and expected ~= "image" or kind ~= "image" and expected == "image" then
    error(tool._id .. "." .. name .. ": wrong kind of input for this call", 3)
  end
  return expected
end

function Tool:GetAttrs()
  local attrs = { TOOLS_Name = self._name, TOOLS_RegID = self._id }
  for key, value in pairs(self._attrs) do
    attrs[key] = value
  end
  return attrs
end

function Tool:SetAttrs(attrs)
  for key, value in pairs(attrs) do
    if key ~= "TOOLS_Name" then
      error("SetAttrs: " .. key .. " is read-only or unknown", 2)
    end
    edit(self._comp, "rename " .. self._name .. " -> " .. value)
    self._comp._tools[self._name] = nil
    self._name = value
    self._comp._tools[value] = self
  end
end

function Tool:GetInput(name)
  check(self, name, "value")
  return self._inputs[name]
end

function Tool:SetInput(name, value)
  local expected = check(self, name, "value")
  if type(value) ~= expected then
    error(self._id .. "." .. name .. " takes a " .. expected .. ", not " .. type(value), 2)
  end
  edit(self._comp, self._name .. "." .. name .. " = " .. tostring(value))
  self._inputs[name] = value
end

function Tool:ConnectInput(name, source)
  check(self, name, "image")
  edit(self._comp, self._name .. "." .. name .. " <- " .. (source and source._name or "nil"))
  self._connections[name] = source
  return true
end

function StandIn.comp(spec)
  -- spec.tools: { {id=, name=, attrs=, inputs=, selected=} }, spec.render_start, spec.ask_user (function or nil)
  local comp = { _tools = {}, _order = {}, _counters = {}, _loose = {}, _groups = {}, _undo = false, _locks = 0 }
  for _, given in ipairs(spec.tools or {}) do
    local tool = make_tool(comp, given.id, given.name)
    for key, value in pairs(given.attrs or {}) do
      tool._attrs[key] = value
    end
    for key, value in pairs(given.inputs or {}) do
      tool._inputs[key] = value
    end
    comp._tools[given.name] = tool
    comp._counters[given.id] = (comp._counters[given.id] or 0) + 1
    if given.selected then
      comp.ActiveTool = tool
    end
  end
  comp.AskUser = spec.ask_user and function(self, title, controls)
    return spec.ask_user(title, controls)
  end or nil
  local has_ask = spec.ask_user ~= nil

  function comp:GetToolList(selected)
    local list = {}
    for _, tool in pairs(self._tools) do
      if not selected or tool == rawget(self, "ActiveTool") then
        table.insert(list, tool)
      end
    end
    return list
  end

  function comp:FindTool(name)
    return self._tools[name]
  end

  function comp:AddTool(id, x, y)
    local count = (self._counters[id] or 0) + 1
    while self._tools[id .. count] do
      count = count + 1
    end
    self._counters[id] = count
    local tool = make_tool(self, id, id .. count)
    edit(self, "add " .. id .. count)
    self._tools[id .. count] = tool
    return tool
  end

  function comp:MapPath(path)
    -- Comp: is the comp file's folder (spec.file_name); other paths come back as they are
    if path:sub(1, 5):lower() == "comp:" and spec.file_name then
      local folder = spec.file_name:match("^(.*)[/\\][^/\\]*$") or "."
      return folder .. "/" .. path:sub(6):gsub("^[/\\]+", "")
    end
    return path
  end

  function comp:GetAttrs()
    return { COMPN_RenderStart = spec.render_start or 0, COMPN_RenderEnd = spec.render_end or 0 }
  end

  function comp:Lock()
    self._locks = self._locks + 1
  end

  function comp:Unlock()
    self._locks = self._locks - 1
  end

  function comp:StartUndo(name)
    if self._undo then
      error("StartUndo inside an open undo group", 2)
    end
    self._undo = { "undo: " .. name }
  end

  function comp:EndUndo(keep)
    if not self._undo then
      error("EndUndo without StartUndo", 2)
    end
    if keep and #self._undo > 1 then
      table.insert(self._groups, self._undo)
    end
    self._undo = false
  end

  -- The stand-in's own report, for the test: the launcher-made tools as plain tables.
  function comp:snapshot(prefix)
    local out = {}
    for name, tool in pairs(self._tools) do
      if name:sub(1, #prefix) == prefix then
        local connections = {}
        for key, source in pairs(tool._connections) do
          connections[key] = source and source._name or false
        end
        out[name] = { id = tool._id, inputs = tool._inputs, connections = connections }
      end
    end
    return { tools = out, groups = #self._groups, loose = #self._loose, locks = self._locks }
  end

  setmetatable(comp, {
    __index = function(_, key)
      if key == "AskUser" and not has_ask then
        return nil -- this edition offers no AskUser
      end
      if key == "ActiveTool" then
        return nil
      end
      error("Composition has no member " .. tostring(key) .. " in the real API", 2)
    end,
  })
  return comp
end

function StandIn.resolve(product, version)
  local app = {}
  function app:GetProductName()
    return product
  end
  function app:GetVersion()
    return version
  end
  return strict(app, "Resolve")
end

return StandIn
