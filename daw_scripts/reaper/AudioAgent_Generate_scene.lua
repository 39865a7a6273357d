-- @description Audio-Agent: sound scenes from text in REAPER (generate, edit, undo/redo, sync, send my changes, Foley)
-- @version 1.1.0
-- @author Audio-Agent
-- @changelog
--   Sync scene: the project is made to match the server's version of a scene (missing items
--   created, deleted events removed, sources, positions and gains fixed), and every run ends so.
--   Send my changes: hand moves, trims, volume changes and deletions become a version of the session.
--   Edit, Undo and Redo name the version the project shows; a stale request is refused and synced.
--   Redo scene edit. One undo point per applied batch, none empty. Peaks built for placed stems.
--   Reversed/sectioned items and folder layouts kept. Windows: prompts with % and ! pass through.
--   The server check no longer blocks REAPER; stopping a run cancels the server job.
--   Cancel running job (the running action's toolbar button shows it is on).
--   Regenerate with new words for the selected item. Scenes coloured, grouped, with a region;
--   optional copy of the stems into the project's media folder.
--   Re-roll the selected items into new takes; the take left active is sent back to the server.
--   A panel (with ReaImGui): prompt history, progress and Cancel, per-event re-roll, mute,
--   loudness and new words, the server's sessions.
--   Re-roll N variations: N seeds of each selected item's sound rendered in one batch, as N new takes.
--   Foley from video: optional VTA checkpoint name (the server's refusal lists the names it offers).
-- @provides
--   [main] AudioAgent_Edit_scene.lua
--   [main] AudioAgent_Undo_scene_edit.lua
--   [main] AudioAgent_Redo_scene_edit.lua
--   [main] AudioAgent_Sync_scene.lua
--   [main] AudioAgent_Send_my_changes.lua
--   [main] AudioAgent_Foley_from_selected_video_item.lua
--   [main] AudioAgent_Regenerate_selected_with_new_words.lua
--   [main] AudioAgent_Cancel_running_job.lua
--   [main] AudioAgent_Reroll_selected_events.lua
--   [main] AudioAgent_Reroll_N_variations.lua
--   [main] AudioAgent_Panel.lua
--   AudioAgent_lib.lua
-- @about
--   Drives a local Audio-Agent server (`audio-agent serve`) from REAPER: a text prompt becomes a
--   folder of tracks, one stem per sound event, placed and gain-staged; edits, undo and redo
--   change only what changed. Needs the `audio-agent` command (pip install audio-agent); run
--   `audio-agent install-daw-scripts --daw reaper` once to point the scripts at it.

-- Asks for a scene prompt and a duration (default: the time selection, else 10 s) and places
-- each stem at the time selection start (else the edit cursor) + the event's start, inside a
-- folder track for the session. Stems land as they are ready (one undo point per batch); the
-- run ends by syncing the project to the server's version. On failure nothing stays inserted.
local dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local AA = dofile(dir .. "AudioAgent_lib.lua").init(dir)
local TITLE = "Generate scene"
AA.pin_project()

local sel_start, sel_end = reaper.GetSet_LoopTimeRange(false, false, 0, 0, false)
local has_selection = sel_end > sel_start
local anchor_s = has_selection and sel_start or reaper.GetCursorPosition()
local default_duration_s = has_selection and (sel_end - sel_start) or 10

local values = AA.ask("Audio-Agent: generate scene", { "Scene prompt", "Duration (s)" },
  { "", AA.format_number(default_duration_s) })
if not values then return AA.no_undo() end
local prompt, duration_s = values[1], tonumber(values[2])
if prompt == "" then
  return AA.error_box(TITLE, "prompt is empty: describe the scene to generate")
end
if not duration_s or duration_s <= 0 then
  return AA.error_box(TITLE, ("duration_s=%s: must be a positive number of seconds"):format(values[2]))
end

-- The server stamps each stem with its timeline time (BWF TimeReference); in project time, so
-- the project start offset is added. Items are placed at raw positions.
local server_anchor_s = math.max(0, anchor_s + AA.time_offset_s())
local session = AA.new_session_name("scene")
AA.new_run({
  kind = "generate", title = TITLE, session = session, anchor_s = anchor_s, prompt = prompt,
  client_args = { "generate", prompt, "--duration", AA.format_number(duration_s),
    "--session", session, "--anchor", AA.format_number(server_anchor_s) },
}):start()
