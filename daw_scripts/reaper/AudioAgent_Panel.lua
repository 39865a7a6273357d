-- @description Audio-Agent: panel (prompt, progress, the scene's events, sessions)
-- @version 1.1.0
-- @author Audio-Agent
-- @noindex

-- A window built with ReaImGui when it is installed (Extensions > ReaPack: "ReaImGui"): a prompt
-- with history, the duration from the time selection, planner/backend, progress with Cancel,
-- the scene's events with mute, re-roll, loudness and new words, and the server's sessions.
-- Without ReaImGui it falls back to the "Generate scene" dialog. Every button runs the same
-- library calls as the actions.
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
AA.pin_project()

if not reaper.ImGui_CreateContext then
  reaper.ShowConsoleMsg("AudioAgent: ReaImGui is not installed; the panel falls back to the dialogs\n")
  return dofile(dir .. "AudioAgent_Generate_scene.lua")
end

local ctx = reaper.ImGui_CreateContext("Audio-Agent")
local ui = {
  text = function(text) reaper.ImGui_Text(ctx, text) end,
  input = function(label, value)
    local _, out = reaper.ImGui_InputText(ctx, label, value)
    return out
  end,
  number = function(label, value)
    local _, out = reaper.ImGui_InputDouble(ctx, label, value)
    return out
  end,
  button = function(label) return reaper.ImGui_Button(ctx, label) end,
  checkbox = function(label, value)
    local _, out = reaper.ImGui_Checkbox(ctx, label, value)
    return out
  end,
  progress = function(fraction, overlay) reaper.ImGui_ProgressBar(ctx, fraction, -1, 0, overlay) end,
  same_line = function() reaper.ImGui_SameLine(ctx) end,
  separator = function() reaper.ImGui_Separator(ctx) end,
  push_id = function(id) reaper.ImGui_PushID(ctx, id) end,
  pop_id = function() reaper.ImGui_PopID(ctx) end,
  selectable = function(label) return reaper.ImGui_Selectable(ctx, label) end,
}
local state = {}

local function frame()
  local visible, open = reaper.ImGui_Begin(ctx, "Audio-Agent", true)
  if visible then
    local ok, err = pcall(AA.panel_frame, state, ui)
    if not ok then state.message = tostring(err) end
    reaper.ImGui_End(ctx)
  end
  if open then reaper.defer(frame) end
end
reaper.defer(frame)
