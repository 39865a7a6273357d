-- @description Audio-Agent: send my changes (moves, trims, volume, deletions) to the server
-- @version 1.1.0
-- @author Audio-Agent
-- @noindex

-- The designer's hand edits of the scene's items become one new version of the session, so
-- the next instruction starts from what the project shows and server undo follows them.
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Send my changes"
AA.pin_project()

local session = AA.current_session()
if not session then
  return AA.error_box(TITLE, "no Audio-Agent scene here: select one of its items, or generate a scene first")
end
if #AA.hand_changes(session) == 0 then
  reaper.ShowConsoleMsg("AudioAgent: no changes of yours to send for " .. session .. "\n")
  return AA.no_undo()
end
AA.request_run({ kind = "changes", title = TITLE, session = session, args = nil })
