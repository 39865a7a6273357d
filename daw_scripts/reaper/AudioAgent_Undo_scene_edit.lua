-- @description Audio-Agent: undo the last edit of the selected item's scene (or the last one)
-- The server steps the session back one plan version; the items are brought in line with it
-- the same way an edit is (only what differs is touched).
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Undo scene edit"

local session = AA.current_session()
if not session then
  return AA.error_box(TITLE, "no Audio-Agent scene here: select one of its items, or generate a scene first")
end
local meta = AA.session_meta(session) or {}
AA.new_run({
  kind = "undo", title = TITLE, session = session, anchor_s = tonumber(meta.anchor_s) or 0,
  client_args = { "undo", "--session", session },
}):start()
