-- @description Audio-Agent: re-roll N variations of the selected items' sounds into new takes
-- @version 1.1.0
-- @author Audio-Agent
-- @noindex

-- Asks how many variations (2 to 8). Each selected item of an Audio-Agent scene then gets that
-- many new seeds of its sound, rendered by the server in one batched generator call (one
-- request), and added to the item as that many new takes in order: the earlier takes stay and
-- the last new take is active. Switch takes with REAPER's own take switching; the take you leave
-- active goes to the server with your next request (or "Send my changes").
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Re-roll N variations"
AA.pin_project()

local session, ids = AA.selected_scene_events(TITLE)
if not session then return end
local ok, text = reaper.GetUserInputs(TITLE, 1, ("Variations (2-%d)"):format(AA.MAX_VARIATIONS), "4")
if not ok then return end
local count = tonumber(AA.trim(text))
if not count or count ~= math.floor(count) or count < 2 or count > AA.MAX_VARIATIONS then
  return AA.error_box(TITLE, ("variations=%q: give a whole number from 2 to %d"):format(text, AA.MAX_VARIATIONS))
end
AA.reroll_events(session, ids, count)
