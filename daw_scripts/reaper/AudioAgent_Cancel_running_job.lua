-- @description Audio-Agent: cancel the running Audio-Agent job
-- @version 1.1.0
-- @author Audio-Agent
-- @noindex

-- Asks the server to cancel the job a running Audio-Agent action is waiting for; that action
-- then ends as a failed run (a new scene's inserted items are taken out again).
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Cancel running job"

local text = reaper.GetExtState(AA.SECTION, "running")
local ok, running = pcall(AA.json.decode, text ~= "" and text or "null")
if not ok or type(running) ~= "table" or running == AA.json.null then
  return AA.error_box(TITLE, "no Audio-Agent job is running")
end
if not running.job then
  return AA.error_box(TITLE, "the running Audio-Agent action has no server job yet; try again in a moment")
end
local started, err = AA.start_client({ "cancel", "--job", running.job }, running.paths)
if not started then return AA.error_box(TITLE, err) end
reaper.ShowConsoleMsg(("AudioAgent: asked the server to cancel job %s (%s)\n"):format(running.job, tostring(running.title)))
AA.no_undo()
