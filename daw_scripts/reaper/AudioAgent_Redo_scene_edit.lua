-- @description Audio-Agent: redo the scene edit undone last (selected item's scene, or the last one)
-- @version 1.1.0
-- @author Audio-Agent
-- @noindex

-- The server steps the session forward one version; the project is synced to it.
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Redo scene edit"
AA.pin_project()

local session = AA.current_session()
if not session then
  return AA.error_box(TITLE, "no Audio-Agent scene here: select one of its items, or generate a scene first")
end
AA.request_run({ kind = "redo", title = TITLE, session = session, args = { "redo" } })
