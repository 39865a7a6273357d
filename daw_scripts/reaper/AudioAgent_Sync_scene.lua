-- @description Audio-Agent: make the project match the server's current version of the scene
-- @version 1.1.0
-- @author Audio-Agent
-- @noindex

-- Asks the server for the scene of the selected item (or the last one) and brings the items in
-- line: creates missing ones, removes items of deleted events, fixes sources, positions and
-- gains. Heals a failed or stopped run, a lost message, or a Ctrl+Z of an Audio-Agent change.
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Sync scene"
AA.pin_project()

local session = AA.current_session()
if not session then
  return AA.error_box(TITLE, "no Audio-Agent scene here: select one of its items, or generate a scene first")
end
AA.new_run({ kind = "sync", title = TITLE, session = session,
  client_args = { "get-session", "--session", session } }):start()
