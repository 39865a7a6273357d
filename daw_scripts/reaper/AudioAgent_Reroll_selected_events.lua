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

local session, changes, ids = nil, {}, {}
for i = 0, math.huge do
  local item = reaper.GetSelectedMediaItem(AA.proj, i)
  if not item then break end
  local item_session, event_id = AA.item_ext(item, AA.EXT_SESSION), AA.item_ext(item, AA.EXT_EVENT)
  if item_session ~= "" and event_id ~= "" and not ids[event_id] then
    if session and item_session ~= session then
      return AA.error_box(TITLE, "the selected items belong to different scenes: select items of one scene")
    end
    session = item_session
    ids[event_id] = true
    changes[#changes + 1] = { op = "set_seed", event_id = event_id, seed = math.random(0, 2147483646) }
  end
end
if not session then
  return AA.error_box(TITLE, "select one or more items of an Audio-Agent scene first")
end
AA.request_run({ kind = "reroll", title = TITLE, session = session, changes = changes, new_takes = ids })
