-- @description Audio-Agent: regenerate the selected item's sound from new words
-- @version 1.1.0
-- @author Audio-Agent
-- @noindex

-- "more metallic", "a wooden door instead": the selected item's event gets a new description
-- (one structured change of the session, after your own changes); the project is then synced,
-- so the item gets the new sound and keeps its place, fades and FX.
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Regenerate with new words"
AA.pin_project()

local item = reaper.GetSelectedMediaItem(AA.proj, 0)
local session = item and AA.item_ext(item, AA.EXT_SESSION) or ""
local event_id = item and AA.item_ext(item, AA.EXT_EVENT) or ""
if session == "" or event_id == "" then
  return AA.error_box(TITLE, "select an item of an Audio-Agent scene first")
end
local take = reaper.GetActiveTake(item)
local _, current = reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", "", false)
local values = AA.ask("Audio-Agent: new words for " .. event_id, { "Describe the sound" }, { current or "" })
if not values then return AA.no_undo() end
if values[1] == "" then
  return AA.error_box(TITLE, "description is empty: describe the sound")
end
AA.request_run({ kind = "edit", title = TITLE, session = session,
  changes = { { op = "replace_text", event_id = event_id, description = values[1] } } })
