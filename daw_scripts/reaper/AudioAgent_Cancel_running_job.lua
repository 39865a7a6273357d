-- @description Audio-Agent: cancel the running Audio-Agent job
-- @version 1.1.0
-- @author Audio-Agent
-- @noindex

-- Asks the server to cancel the job a running Audio-Agent action is waiting for; that action
-- then ends as a failed run (a new scene's inserted items are taken out again).
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Cancel running job"

local job, err = AA.cancel_running()
if not job then return AA.error_box(TITLE, err) end
reaper.ShowConsoleMsg(("AudioAgent: asked the server to cancel job %s\n"):format(job))
AA.no_undo()
