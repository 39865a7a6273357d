-- @description Audio-Agent: revise the scene of the selected item (or the last one)
-- Only items whose event the server reports as changed, moved, re-gained, removed or added are
-- touched; every other item keeps the fades, offsets and FX the user gave it.
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Edit scene"

local session = AA.current_session()
if not session then
  return AA.error_box(TITLE, "no Audio-Agent scene here: select one of its items, or generate a scene first")
end
local values = AA.ask("Audio-Agent: edit scene " .. session, { "Instruction" }, { "" })
if not values then return end
if values[1] == "" then
  return AA.error_box(TITLE, "instruction is empty: say what to change")
end
local meta = AA.session_meta(session) or {}
AA.new_run({
  kind = "edit", title = TITLE, session = session, anchor_s = tonumber(meta.anchor_s) or 0,
  client_args = { "edit", values[1], "--session", session },
}):start()
