-- @description Audio-Agent: revise the scene of the selected item (or the last one)
-- @version 1.1.0
-- @author Audio-Agent
-- @noindex

-- Sends the designer's own changes first (moves, trims, volume, deletions), then the
-- instruction, naming the version this project shows; the run ends by syncing the project to
-- the new version (only items whose event changed are touched).
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Edit scene"
AA.pin_project()

local session = AA.current_session()
if not session then
  return AA.error_box(TITLE, "no Audio-Agent scene here: select one of its items, or generate a scene first")
end
local values = AA.ask("Audio-Agent: edit scene " .. session, { "Instruction" }, { "" })
if not values then return AA.no_undo() end
if values[1] == "" then
  return AA.error_box(TITLE, "instruction is empty: say what to change")
end
AA.request_run({ kind = "edit", title = TITLE, session = session, args = { "edit", values[1] } })
