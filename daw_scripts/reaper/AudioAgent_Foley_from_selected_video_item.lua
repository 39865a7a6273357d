-- @description Audio-Agent: foley for the used range of the selected video item
-- @version 1.1.0
-- @author Audio-Agent
-- @noindex

-- Sends the video file and the part of it the item plays (take start offset .. + item length)
-- with an optional hint; the stems land relative to the video item's position.
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Foley from video"
AA.pin_project()

local item = reaper.GetSelectedMediaItem(AA.proj, 0)
local take = item and reaper.GetActiveTake(item)
if not take then
  return AA.error_box(TITLE, "select a video item first")
end
-- A reversed or sectioned item plays a SECTION source that has no file of its own; the file
-- is its parent, and a section moves where in the file the item's range starts.
local video_path, section = AA.take_file(take)
local source = reaper.GetMediaItemTake_Source(take)
while source and reaper.GetMediaSourceParent(source) do source = reaper.GetMediaSourceParent(source) end
local source_type = source and reaper.GetMediaSourceType(source, "") or ""
if not source_type:upper():find("VIDEO") then
  return AA.error_box(TITLE, ("the selected item is not a video (source type %q)"):format(source_type))
end
if section and section.reversed then
  return AA.error_box(TITLE, "the selected video item plays reversed: Foley needs the video's own file "
    .. "playing forwards. Turn off Item properties > Reverse (or select an unreversed copy) and try again.")
end
if video_path == "" then
  return AA.error_box(TITLE, "the selected item's video has no file name REAPER can tell us: Foley needs "
    .. "the video's file")
end
local rate = reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE")
if math.abs(rate - 1) > 1e-9 then
  return AA.error_box(TITLE, ("play rate %s: only items playing at 1.0 are supported"):format(AA.format_number(rate)))
end
local position_s = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
local start_s = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS") + (section and section.offset_s or 0)
local end_s = start_s + reaper.GetMediaItemInfo_Value(item, "D_LENGTH")

-- A VTA checkpoint name renders from the picture (the server's `--vta-checkpoint NAME=DIR`
-- names); blank keeps the text generator. A name the server does not offer is refused by it
-- before the job starts, and its message (listing the names it offers) is shown.
local values = AA.ask("Audio-Agent: foley from video", { "Hint (optional)", "VTA checkpoint name (blank: text)" },
  { "", "" })
if not values then return AA.no_undo() end
local checkpoint = values[2] or ""
if checkpoint ~= "" and (#checkpoint > 48 or not checkpoint:match("^[%w][%w_%.%-]*$")) then
  return AA.error_box(TITLE, ("VTA checkpoint name %q: a name the server offers (letters, digits, _ . -), "
    .. "not a path; leave it blank for the text generator"):format(checkpoint))
end
local session = AA.new_session_name("video")
local args = { "video-cue", video_path, "--start", AA.format_number(start_s),
  "--end", AA.format_number(end_s), "--anchor", AA.format_number(math.max(0, position_s + AA.time_offset_s())),
  "--session", session }
if values[1] ~= "" then
  args[#args + 1] = "--hint"
  args[#args + 1] = values[1]
end
if checkpoint ~= "" then
  for _, a in ipairs({ "--generator", "vta", "--checkpoint", checkpoint }) do args[#args + 1] = a end
end
AA.new_run({
  kind = "video", title = TITLE, session = session, anchor_s = position_s,
  prompt = "video " .. (video_path:match("([^/\\]+)$") or video_path), client_args = args,
}):start()
