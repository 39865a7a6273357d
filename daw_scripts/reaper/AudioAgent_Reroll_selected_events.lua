-- @description Audio-Agent: re-roll the selected items' sounds into new takes
-- @version 1.1.0
-- @author Audio-Agent
-- @noindex

-- Each selected item of an Audio-Agent scene gets another variation of its sound (a new seed),
-- rendered as a new take on the same item: the earlier takes stay, the new one is active, so
-- you compare with REAPER's own take switching. The take you leave active is sent to the
-- server with your next request (or "Send my changes"), so later edits keep it.
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Re-roll into a new take"
AA.pin_project()

local session, ids = AA.selected_scene_events(TITLE)
if not session then return end
AA.reroll_events(session, ids)
