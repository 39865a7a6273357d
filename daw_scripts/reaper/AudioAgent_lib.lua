-- @noindex

-- AudioAgent_lib.lua: shared code for the Audio-Agent ReaScripts.
--
-- Loaded by each action with dofile; returns one table. The actions talk to the local
-- Audio-Agent server through the `audio-agent client` command line: it runs in the background
-- and appends every server message as one JSON line to an events file, which a defer loop
-- polls. Nothing here blocks REAPER except one short `client status` call per run.

local AA = {}
AA.SECTION = "AudioAgent" -- project ext state section and ExtState section
AA.EXT_EVENT = "P_EXT:audioagent_event"
AA.EXT_SESSION = "P_EXT:audioagent_session"
AA.EXT_ROLE = "P_EXT:audioagent_role"

------------------------------------------------------------------------------------------------
-- JSON (just what the wire protocol needs: objects, arrays, strings, numbers, true/false/null)
------------------------------------------------------------------------------------------------
local json = {}
AA.json = json
json.null = setmetatable({}, { __tostring = function() return "null" end })

local function json_fail(pos, message)
  error(("invalid JSON at character %d: %s"):format(pos, message), 0)
end

local function skip_ws(s, i)
  return s:find("[^ \t\r\n]", i) or (#s + 1)
end

local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function parse_string(s, i)
  local parts, j = {}, i + 1
  while true do
    local k = s:find('["\\]', j)
    if not k then json_fail(i, "unterminated string") end
    parts[#parts + 1] = s:sub(j, k - 1)
    if s:sub(k, k) == '"' then return table.concat(parts), k + 1 end
    local c = s:sub(k + 1, k + 1)
    if c == "u" then
      local hex = s:sub(k + 2, k + 5)
      if not hex:match("^%x%x%x%x$") then json_fail(k, "bad \\u escape") end
      local cp = tonumber(hex, 16)
      j = k + 6
      if cp >= 0xD800 and cp <= 0xDBFF then -- a UTF-16 surrogate pair spells one code point
        local low = s:match("^\\u(%x%x%x%x)", j)
        local lo = low and tonumber(low, 16)
        if lo and lo >= 0xDC00 and lo <= 0xDFFF then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
          j = j + 6
        end
      end
      parts[#parts + 1] = utf8.char(cp)
    else
      local e = ESCAPES[c]
      if not e then json_fail(k, "bad escape") end
      parts[#parts + 1] = e
      j = k + 2
    end
  end
end

local parse_value

local function parse_array(s, i)
  local out, n = {}, 0
  i = skip_ws(s, i + 1)
  if s:sub(i, i) == "]" then return out, i + 1 end
  while true do
    local v
    v, i = parse_value(s, i)
    n = n + 1
    out[n] = v
    i = skip_ws(s, i)
    local c = s:sub(i, i)
    if c == "]" then return out, i + 1 end
    if c ~= "," then json_fail(i, "expected ',' or ']'") end
    i = skip_ws(s, i + 1)
  end
end

local function parse_object(s, i)
  local out = {}
  i = skip_ws(s, i + 1)
  if s:sub(i, i) == "}" then return out, i + 1 end
  while true do
    if s:sub(i, i) ~= '"' then json_fail(i, "expected a key") end
    local key
    key, i = parse_string(s, i)
    i = skip_ws(s, i)
    if s:sub(i, i) ~= ":" then json_fail(i, "expected ':'") end
    local v
    v, i = parse_value(s, skip_ws(s, i + 1))
    if v ~= json.null then out[key] = v end
    i = skip_ws(s, i)
    local c = s:sub(i, i)
    if c == "}" then return out, i + 1 end
    if c ~= "," then json_fail(i, "expected ',' or '}'") end
    i = skip_ws(s, i + 1)
  end
end

parse_value = function(s, i)
  i = skip_ws(s, i)
  local c = s:sub(i, i)
  if c == "{" then return parse_object(s, i) end
  if c == "[" then return parse_array(s, i) end
  if c == '"' then return parse_string(s, i) end
  if s:sub(i, i + 3) == "true" then return true, i + 4 end
  if s:sub(i, i + 4) == "false" then return false, i + 5 end
  if s:sub(i, i + 3) == "null" then return json.null, i + 4 end
  local text = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
  local number = text and tonumber(text)
  if not number then json_fail(i, "unexpected character") end
  return number, i + #text
end

function json.decode(s)
  if type(s) ~= "string" then error("invalid JSON: not a string", 0) end
  local value, i = parse_value(s, 1)
  if skip_ws(s, i) <= #s then json_fail(i, "trailing characters") end
  return value
end

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t and (n > 0 or getmetatable(t) == json.array_mt)
end
json.array_mt = {}

function json.encode(v)
  local kind = type(v)
  if v == nil or v == json.null then return "null" end
  if kind == "boolean" then return tostring(v) end
  if kind == "number" then
    if v ~= v or v == math.huge or v == -math.huge then error("cannot encode " .. tostring(v) .. " as JSON", 0) end
    if math.type(v) == "integer" then return tostring(v) end
    return ("%.17g"):format(v)
  end
  if kind == "string" then return encode_string(v) end
  if kind ~= "table" then error("cannot encode a " .. kind .. " as JSON", 0) end
  local parts = {}
  if is_array(v) then
    for i = 1, #v do parts[i] = json.encode(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys) -- stable output keeps project ext state diffs readable
  for i, k in ipairs(keys) do parts[i] = encode_string(k) .. ":" .. json.encode(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

------------------------------------------------------------------------------------------------
-- Small helpers
------------------------------------------------------------------------------------------------
function AA.is_windows()
  return (reaper.GetOS() or ""):match("^Win") ~= nil
end


function AA.db_to_linear(gain_db)
  return 10 ^ (gain_db / 20)
end

-- Normalise a path for comparison: forward slashes, no duplicate or trailing slash, no "." parts.
-- Returns nil when a ".." part is present: a stem path never needs one, so it is refused outright.
function AA.normalize_path(path)
  if type(path) ~= "string" or path == "" then return nil end
  local p = path:gsub("\\", "/")
  local prefix = ""
  if p:sub(1, 2) == "//" then prefix, p = "//", p:sub(3) -- UNC share
  elseif p:sub(1, 1) == "/" then prefix, p = "/", p:sub(2) end
  local parts = {}
  for part in p:gmatch("[^/]+") do
    if part == ".." then return nil end
    if part ~= "." then parts[#parts + 1] = part end
  end
  return prefix .. table.concat(parts, "/")
end

-- True when `path` is a file strictly inside `root` (both normalised; case-blind on Windows).
function AA.path_is_under(path, root)
  local p, r = AA.normalize_path(path), AA.normalize_path(root)
  if not p or not r or r == "" then return false end
  if AA.is_windows() then p, r = p:lower(), r:lower() end
  if r:sub(-1) ~= "/" then r = r .. "/" end
  return #p > #r and p:sub(1, #r) == r
end

-- Quote one argument for the shell that runs it: /bin/sh on macOS/Linux, a .cmd batch file on
-- Windows. In a batch file (delayed expansion off) only `%` is special inside "...": it is
-- doubled. `"` has no escape there, so it becomes `'`. Python reads its argv with the C
-- runtime's rules, where backslashes right before the closing quote escape it: a trailing run
-- of backslashes is doubled so a prompt or folder ending in `\` cannot swallow what follows.
function AA.shell_quote(arg)
  arg = tostring(arg)
  if AA.is_windows() then
    local text = arg:gsub('"', "'"):gsub("%%", "%%%%")
    local body, slashes = text:match("^(.-)(\\*)$")
    return '"' .. body .. slashes .. slashes .. '"'
  end
  return "'" .. arg:gsub("'", "'\\''") .. "'"
end

function AA.join_command(argv)
  local quoted = {}
  for i, arg in ipairs(argv) do quoted[i] = AA.shell_quote(arg) end
  return table.concat(quoted, " ")
end

-- Seconds as short decimal text ("10", "2.5"), never with an exponent.
function AA.format_number(value)
  local text = ("%.6f"):format(value):gsub("0+$", ""):gsub("%.$", "")
  return text
end

function AA.read_file(path)
  local handle = io.open(path, "rb")
  if not handle then return nil end
  local text = handle:read("a")
  handle:close()
  return text
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end
AA.trim = trim

-- The first `max_chars` characters of UTF-8 text (a byte cut could split a character).
function AA.utf8_prefix(text, max_chars)
  local ok, cut = pcall(utf8.offset, text, max_chars + 1)
  if not ok then return text:sub(1, max_chars) end
  return cut and text:sub(1, cut - 1) or text
end

------------------------------------------------------------------------------------------------
-- Configuration: AudioAgent_config.lua beside the scripts (written by install-daw-scripts)
------------------------------------------------------------------------------------------------
-- copy_to_project: copy each stem into the project's media folder (AudioAgent/<session>/) and
-- place the copy, so the project stays whole when it moves to another machine.
-- audition_rerolls: play each re-rolled variation and ask whether to keep it before it becomes
-- the active take (declined: the take stays, the previous one stays active).
AA.config = { client = { "audio-agent" }, url = nil, stall_s = 180, status_timeout_s = 20, copy_to_project = false,
  audition_rerolls = false }

function AA.init(script_dir)
  AA.script_dir = script_dir or ""
  local path = AA.script_dir .. "AudioAgent_config.lua"
  if reaper.file_exists(path) then
    local ok, loaded = pcall(dofile, path)
    if ok and type(loaded) == "table" then
      for k, v in pairs(loaded) do AA.config[k] = v end
    end
  end
  return AA
end

function AA.client_argv(args)
  local argv = {}
  for _, part in ipairs(AA.config.client) do argv[#argv + 1] = part end
  argv[#argv + 1] = "client"
  for _, part in ipairs(args) do argv[#argv + 1] = part end
  if AA.config.url and AA.config.url ~= "" then
    argv[#argv + 1] = "--url"
    argv[#argv + 1] = AA.config.url
  end
  return argv
end

------------------------------------------------------------------------------------------------
-- Talking to the server through the client
------------------------------------------------------------------------------------------------

-- Write one `audio-agent client` call to a script file and return the line that runs it, with
-- stdout+stderr going to `log_path` and the exit status to `exit_path` (how the poll loop
-- learns the client ended).
--
-- macOS/Linux: REAPER's ExecProcess runs no shell; it splits the line at spaces, keeping a run
-- in '...', "..." or `...` together, with no escapes at all, so no quoting can carry an
-- arbitrary prompt through it: REAPER runs `/bin/sh <script>`. Windows: a `.cmd` batch file
-- run by `cmd.exe /D /C "<script>"`, without delayed expansion, so `!` in a prompt or a path
-- is plain text, and the exit status is read on its own line (%ERRORLEVEL%).
function AA.shell_command(argv, log_path, exit_path, script_path)
  if not script_path then error("shell_command: a script path is needed", 0) end
  local cmd = AA.join_command(argv) .. " > " .. AA.shell_quote(log_path) .. " 2>&1"
  local lines
  if AA.is_windows() then
    script_path = script_path:gsub("%.sh$", ".cmd")
    if script_path:find('["%%]') then
      error(("cannot run a script at %s: cmd.exe cannot take a path with \" or %%"):format(script_path), 0)
    end
    lines = { "@echo off", "rem written by AudioAgent_lib.lua for one audio-agent client call",
      "setlocal DisableDelayedExpansion", "chcp 65001 > nul", cmd,
      "(echo %ERRORLEVEL%)> " .. AA.shell_quote(exit_path) }
  else
    lines = { "#!/bin/sh", "# written by AudioAgent_lib.lua for one audio-agent client call", cmd,
      "echo $? > " .. AA.shell_quote(exit_path) }
  end
  local handle, open_error = io.open(script_path, "wb")
  if not handle then error("cannot write " .. tostring(open_error), 0) end
  handle:write(table.concat(lines, AA.is_windows() and "\r\n" or "\n"), AA.is_windows() and "\r\n" or "\n")
  handle:close()
  if AA.is_windows() then return 'cmd.exe /D /C "' .. script_path .. '"' end
  local quote
  for _, q in ipairs({ '"', "'", "`" }) do
    if not script_path:find(q, 1, true) then quote = q break end
  end
  if not quote or script_path:find("[\r\n]") then
    error(("cannot run a script at %s: REAPER cannot pass a path with quotes or line breaks"):format(script_path), 0)
  end
  return "/bin/sh " .. quote .. script_path .. quote
end

-- The timeout argument that starts a process without waiting: -2 also keeps cmd.exe's console
-- window minimised on Windows, where -1 would put one in front of REAPER for the whole job.
function AA.no_wait()
  return AA.is_windows() and -2 or -1
end

-- Start one client call in the background. `paths` has log, exit and script.
function AA.start_client(args, paths)
  local ok, cmd = pcall(AA.shell_command, AA.client_argv(args), paths.log, paths.exit, paths.script)
  if not ok then return nil, cmd end
  -- What a no-wait call returns is not documented, so it is not read: a client that never
  -- starts shows up as an exit status (sh/cmd.exe report it) or, at worst, as silence.
  reaper.ExecProcess(cmd, AA.no_wait())
  return true
end

-- The exit status of a finished background call, or nil while it runs.
function AA.exit_status(paths)
  local status = AA.read_file(paths.exit)
  return status and tonumber(status:match("(%-?%d+)")) or nil
end

-- What `client status` printed (stdout and stderr together) -> pong table, or nil, message.
function AA.parse_status(code, text)
  text = text or ""
  if code ~= 0 then
    local last = trim(text):match("([^\n]*)$") or ""
    if code == 127 or code == 9009 then -- sh / cmd.exe: no such command
      return nil, ("could not start the audio-agent client (%s): %s. Re-run `audio-agent "
        .. "install-daw-scripts` from the install you use, or set `client` in "
        .. "AudioAgent_config.lua."):format(tostring(AA.config.client[1]), last)
    end
    return nil, "the Audio-Agent server is not reachable: " .. (last ~= "" and last or "no answer")
  end
  for line in text:gmatch("[^\r\n]+") do
    if line:match("^%s*{") then
      local ok, pong = pcall(json.decode, line)
      if ok and type(pong) == "table" then return pong end
    end
  end
  return nil, "the Audio-Agent server gave no status: " .. trim(text)
end

function AA.stem_root_of(pong)
  local root = pong.stem_root or (type(pong.pong) == "table" and pong.pong.stem_root)
  if type(root) ~= "string" or root == "" then return nil end
  return root
end

-- Files of one client job under <resource path>/AudioAgent/jobs; never reuses an old name,
-- since a stale events file would replay someone else's messages.
function AA.new_job_paths(tag, session)
  local dir = reaper.GetResourcePath() .. "/AudioAgent/jobs"
  reaper.RecursiveCreateDirectory(dir, 0)
  -- A session name read from an item could hold anything: keep file names plain.
  local safe = tostring(session):gsub("[^%w%-_.]", "_")
  local stem = dir .. "/" .. tag .. "-" .. safe .. "-" .. os.date("!%Y%m%d-%H%M%S")
  local base, n = stem, 1
  while reaper.file_exists(base .. ".jsonl") or reaper.file_exists(base .. ".exit")
    or reaper.file_exists(base .. "-status.exit") do
    n = n + 1
    base = stem .. "-" .. n
  end
  return {
    events = base .. ".jsonl", exit = base .. ".exit", log = base .. ".log", script = base .. ".sh",
    status = { exit = base .. "-status.exit", log = base .. "-status.log", script = base .. "-status.sh" },
    cancel = { exit = base .. "-cancel.exit", log = base .. "-cancel.log", script = base .. "-cancel.sh" },
  }
end

function AA.new_session_name(kind)
  return ("rpr-%s-%s-%04d"):format(kind, os.date("!%Y%m%d-%H%M%S"), math.random(0, 9999))
end

-- A reader that returns each complete new line of the events file once.
function AA.line_reader(path)
  local reader = { path = path, offset = 0, pending = "" }
  function reader.read()
    local handle = io.open(path, "rb")
    if not handle then return {} end
    handle:seek("set", reader.offset)
    local chunk = handle:read("a") or ""
    handle:close()
    reader.offset = reader.offset + #chunk
    local text = reader.pending .. chunk
    local lines = {}
    local start = 1
    while true do
      local nl = text:find("\n", start, true)
      if not nl then break end
      local line = trim(text:sub(start, nl - 1))
      if line ~= "" then lines[#lines + 1] = line end
      start = nl + 1
    end
    reader.pending = text:sub(start) -- a line still being written
    return lines
  end
  return reader
end

------------------------------------------------------------------------------------------------
-- Project access. Every call names the project pinned at the start of the action
-- (EnumProjects(-1)), never 0 ("whichever tab is active now"), so switching tabs while a job
-- runs cannot send items or state to another project.
------------------------------------------------------------------------------------------------
AA.proj = 0

function AA.pin_project()
  AA.proj = reaper.EnumProjects(-1)
  return AA.proj
end

-- InsertTrackAtIndex has no project argument (it works on the active tab), so anything that
-- adds tracks waits until the pinned project is the active one again.
function AA.project_is_active()
  return AA.proj == 0 or reaper.EnumProjects(-1) == AA.proj
end

-- False for a track or item the user deleted (or undid away) since we got it: REAPER refuses
-- a dead pointer, so anything held across defer cycles is checked before use.
function AA.alive(pointer, type_name)
  return pointer ~= nil and reaper.ValidatePtr2(AA.proj, pointer, type_name)
end

function AA.item_ext(item, key, value)
  if value == nil then
    local _, v = reaper.GetSetMediaItemInfo_String(item, key, "", false)
    return v or ""
  end
  reaper.GetSetMediaItemInfo_String(item, key, value, true)
end

function AA.track_ext(track, key, value)
  if value == nil then
    local _, v = reaper.GetSetMediaTrackInfo_String(track, key, "", false)
    return v or ""
  end
  reaper.GetSetMediaTrackInfo_String(track, key, value, true)
end

function AA.get_proj(key)
  local _, value = reaper.GetProjExtState(AA.proj, AA.SECTION, key)
  return value or ""
end

function AA.set_proj(key, value)
  reaper.SetProjExtState(AA.proj, AA.SECTION, key, value)
end

function AA.time_offset_s()
  return reaper.GetProjectTimeOffset(AA.proj, false) or 0
end

function AA.session_meta(session)
  local text = AA.get_proj("session:" .. session)
  if text == "" then return nil end
  local ok, meta = pcall(json.decode, text)
  return ok and type(meta) == "table" and meta or nil
end

-- Every item of `session`, keyed by event id (a list: the user may have duplicated one).
function AA.session_items(session)
  local by_event = {}
  for i = 0, reaper.CountMediaItems(AA.proj) - 1 do
    local item = reaper.GetMediaItem(AA.proj, i)
    if AA.item_ext(item, AA.EXT_SESSION) == session then
      local id = AA.item_ext(item, AA.EXT_EVENT)
      if id ~= "" then
        by_event[id] = by_event[id] or {}
        table.insert(by_event[id], item)
      end
    end
  end
  return by_event
end

function AA.track_index(track)
  return math.floor(reaper.GetMediaTrackInfo_Value(track, "IP_TRACKNUMBER")) - 1
end

function AA.find_folder(session)
  for i = 0, reaper.CountTracks(AA.proj) - 1 do
    local track = reaper.GetTrack(AA.proj, i)
    if AA.track_ext(track, AA.EXT_SESSION) == session and AA.track_ext(track, AA.EXT_ROLE) == "folder" then
      return track
    end
  end
end

-- The last track inside `folder` (nil when it has no children).
function AA.last_child(folder)
  if reaper.GetMediaTrackInfo_Value(folder, "I_FOLDERDEPTH") ~= 1 then return nil end
  local level, last = 1, nil
  for i = AA.track_index(folder) + 1, reaper.CountTracks(AA.proj) - 1 do
    local track = reaper.GetTrack(AA.proj, i)
    last = track
    level = level + reaper.GetMediaTrackInfo_Value(track, "I_FOLDERDEPTH")
    if level <= 0 then break end
  end
  return last
end

-- Delete a track without breaking the folders around it: a track that closes one or more
-- folders (depth < 0) hands its depth to the track above, so the designer's own folder that
-- holds our scene folder still closes where it did.
function AA.delete_track_keeping_folders(track)
  local depth = reaper.GetMediaTrackInfo_Value(track, "I_FOLDERDEPTH")
  if depth > 0 then return false end -- a folder parent: its children would be re-parented
  local index = AA.track_index(track)
  if depth < 0 and index > 0 then
    local previous = reaper.GetTrack(AA.proj, index - 1)
    reaper.SetMediaTrackInfo_Value(previous, "I_FOLDERDEPTH",
      reaper.GetMediaTrackInfo_Value(previous, "I_FOLDERDEPTH") + depth)
  end
  reaper.DeleteTrack(track)
  return true
end

-- The file a take plays and how: plain file, or a SECTION (reversed / section of the file)
-- whose own file name is "" and whose parent leads to the file.
function AA.take_file(take)
  local source = take and reaper.GetMediaItemTake_Source(take)
  if not source then return "", nil end
  local section = nil
  while reaper.GetMediaSourceType(source, "") == "SECTION" do
    local ok, offset_s, length_s, reversed = reaper.PCM_Source_GetSectionInfo(source)
    section = section or { offset_s = ok and offset_s or 0, length_s = ok and length_s or 0, reversed = ok and reversed or false }
    local parent = reaper.GetMediaSourceParent(source)
    if not parent then break end
    source = parent
  end
  return reaper.GetMediaSourceFileName(source, "") or "", section
end

-- Build the peaks of a newly placed source so its waveform shows at once (REAPER builds none
-- for a source set by the API): begin, run until nothing is left, finish.
function AA.build_peaks(source)
  if reaper.PCM_Source_BuildPeaks(source, 0) ~= 0 then
    for _ = 1, 10000 do
      if reaper.PCM_Source_BuildPeaks(source, 1) == 0 then break end
    end
    reaper.PCM_Source_BuildPeaks(source, 2)
  end
end

-- Point a take at a new file. A plain take gets a new source; a sectioned or reversed one keeps
-- its section/reverse: the file is swapped inside the item's state chunk (the only way to
-- re-point a SECTION source's parent).
function AA.set_take_file(item, take, path)
  local old_path, section = AA.take_file(take)
  if not section then
    local old = reaper.GetMediaItemTake_Source(take)
    local source = reaper.PCM_Source_CreateFromFile(path)
    reaper.SetMediaItemTake_Source(take, source)
    AA.build_peaks(source)
    return old
  end
  local _, chunk = reaper.GetItemStateChunk(item, "", false)
  local quoted = 'FILE "' .. old_path .. '"'
  local at = chunk:find(quoted, 1, true)
  if not at then error(("cannot swap the file of a reversed/sectioned item: %s not in its state"):format(old_path), 0) end
  chunk = chunk:sub(1, at - 1) .. 'FILE "' .. path .. '"' .. chunk:sub(at + #quoted)
  reaper.SetItemStateChunk(item, chunk, false)
  local new_take = reaper.GetActiveTake(item)
  local source = new_take and reaper.GetMediaItemTake_Source(new_take)
  while source and reaper.GetMediaSourceParent(source) do source = reaper.GetMediaSourceParent(source) end
  if source then AA.build_peaks(source) end
  return nil
end

------------------------------------------------------------------------------------------------
-- Scene organisation: one colour per scene (folder, tracks, items), the scene's items in one
-- item group, a region named after the scene, and optionally stems copied into the project.
------------------------------------------------------------------------------------------------
local PALETTE = { { 86, 156, 214 }, { 214, 157, 86 }, { 120, 190, 110 }, { 200, 110, 160 }, { 150, 130, 210 },
  { 90, 185, 180 }, { 210, 190, 90 }, { 220, 110, 100 } }

function AA.session_color(session)
  local hash = 0
  for i = 1, #session do hash = (hash * 31 + session:byte(i)) % 2147483647 end
  local rgb = PALETTE[hash % #PALETTE + 1]
  return reaper.ColorToNative(rgb[1], rgb[2], rgb[3]) | 0x1000000 -- the flag that says "custom colour set"
end

-- A group id no item of the project uses yet.
function AA.new_group_id()
  local top = 0
  for i = 0, reaper.CountMediaItems(AA.proj) - 1 do
    top = math.max(top, reaper.GetMediaItemInfo_Value(reaper.GetMediaItem(AA.proj, i), "I_GROUPID"))
  end
  return math.floor(top) + 1
end

-- The scene's region: {number, pos, end, name} when it exists.
function AA.find_region(number)
  if not number then return nil end
  local i = 0
  while true do
    local ok, is_region, pos, region_end, name, index = reaper.EnumProjectMarkers3(AA.proj, i)
    if not ok or ok == 0 then return nil end
    if is_region and index == number then return { number = index, pos = pos, ["end"] = region_end, name = name } end
    i = i + 1
  end
end

-- Where a stem is placed from: the server's file, or its copy in the project's media folder.
function AA.placed_file(session, path)
  if not AA.config.copy_to_project then return path end
  local dir = reaper.GetProjectPathEx(AA.proj, "") .. "/AudioAgent/" .. tostring(session):gsub("[^%w%-_.]", "_")
  local target = dir .. "/" .. (path:match("([^/\\]+)$") or "stem.wav")
  if not reaper.file_exists(target) then
    reaper.RecursiveCreateDirectory(dir, 0)
    local data = AA.read_file(path)
    if not data then error("cannot read " .. path .. " to copy it into the project", 0) end
    local handle = io.open(target .. ".part", "wb")
    if not handle then error("cannot write into the project's media folder " .. dir, 0) end
    handle:write(data)
    handle:close()
    os.rename(target .. ".part", target)
  end
  return target
end

-- Play a file for the designer: the SWS extension's preview where it is installed (plays
-- in the background, stoppable), else REAPER's Media Explorer (opens it, playing the file).
-- Returns a handle for preview_stop, or nil, why.
function AA.preview_start(path)
  if reaper.CF_CreatePreview then
    local source = reaper.PCM_Source_CreateFromFile(path)
    local preview = reaper.CF_CreatePreview(source)
    reaper.CF_Preview_Play(preview)
    return { preview = preview, source = source }
  end
  if reaper.OpenMediaExplorer then
    reaper.OpenMediaExplorer(path, true)
    return { explorer = true }
  end
  return nil, "no preview: install the SWS extension (or use a REAPER with the Media Explorer)"
end

function AA.preview_stop(handle)
  if handle and handle.preview then
    reaper.CF_Preview_Stop(handle.preview)
    reaper.PCM_Source_Destroy(handle.source) -- a preview does not own its source
  end
end

-- The designer hears each new take and keeps it or not; a take not kept stays on the item but
-- the take that was active before is active again (and stays the event's, as a hand change).
function AA.audition_new_takes(actions)
  for _, action in ipairs(actions) do
    local changes = action.changes
    if action.op == "update" and changes and changes.new_take and changes.previous_take
      and AA.alive(action.item, "MediaItem*") then
      local take = reaper.GetActiveTake(action.item)
      local handle = AA.preview_start(AA.take_file(take))
      local answer = reaper.ShowMessageBox(("Keep the new take of \"%s\"?"):format(action.event.description),
        "AudioAgent: audition", 4)
      AA.preview_stop(handle)
      if answer == 7 then reaper.SetActiveTake(changes.previous_take) end
    end
  end
end

------------------------------------------------------------------------------------------------
-- Reconcile: make the project match one version of a session, keyed by event id.
--
-- Each of our items carries P_EXT:audioagent_placed, the event as we last placed it
-- (start_s, gain_db, stem_path, fades) and where that put the item (pos, vol). Values the
-- designer changed by hand since (position, volume) differ from that record; the reconcile
-- shifts them by as much as the event changed, so a nudge or a trim of volume survives, and
-- an untouched item simply gets the server's value. Because the record lives on the item, a
-- Ctrl+Z that restores an older item restores its record too, and the next sync heals it.
------------------------------------------------------------------------------------------------
AA.EXT_PLACED = "P_EXT:audioagent_placed"
local EPS = 1e-6

function AA.placed(item)
  local text = AA.item_ext(item, AA.EXT_PLACED)
  if text == "" then return nil end
  local ok, record = pcall(json.decode, text)
  return ok and type(record) == "table" and record or nil
end

local function differs(a, b)
  return math.abs((tonumber(a) or 0) - (tonumber(b) or 0)) > EPS
end

-- An event from a manifest / stem_ready / session message, in one shape.
function AA.scene_event(e)
  return {
    id = tostring(e.event_id or e.id), description = tostring(e.description or e.event_id or e.id),
    start_s = tonumber(e.start_s) or 0, end_s = tonumber(e.end_s) or 0, gain_db = tonumber(e.gain_db) or 0,
    stem_path = e.stem_path, fade_in_s = tonumber(e.fade_in_s), fade_out_s = tonumber(e.fade_out_s),
    target_lufs = tonumber(e.target_lufs), seed = tonumber(e.seed),
    cache_key = type(e.cache_key) == "string" and e.cache_key ~= "" and e.cache_key or nil,
  }
end

-- What it takes to bring `item` to `event` (a table of changes, empty when it already matches).
AA.EXT_TAKE_CACHE = "P_EXT:audioagent_cache"
AA.EXT_TAKE_SEED = "P_EXT:audioagent_seed"

-- The take of `item` that plays the render with `cache_key` (a re-roll's variations are takes).
function AA.take_with_cache(item, cache_key)
  if not cache_key then return nil end
  for i = 0, reaper.CountTakes(item) - 1 do
    local take = reaper.GetTake(item, i)
    local _, key = reaper.GetSetMediaItemTakeInfo_String(take, AA.EXT_TAKE_CACHE, "", false)
    if key == cache_key then return take end
  end
end

-- A manifest's variations (a re-roll of N), as event id -> list in number order.
function AA.variations_by_event(list)
  if type(list) ~= "table" or #list == 0 then return nil end
  local by_event = {}
  for _, v in ipairs(list) do
    local id = tostring(v.event_id)
    by_event[id] = by_event[id] or {}
    by_event[id][#by_event[id] + 1] = { number = tonumber(v.number) or 0, seed = tonumber(v.seed),
      stem_path = v.stem_path, cache_key = type(v.cache_key) == "string" and v.cache_key ~= "" and v.cache_key or nil }
  end
  for _, vs in pairs(by_event) do table.sort(vs, function(a, b) return a.number < b.number end) end
  return by_event
end

-- variations: this run's re-roll of N for the event; each one the item lacks becomes a take.
function AA.item_changes(item, event, anchor_s, new_take, variations)
  local record = AA.placed(item)
  local take = reaper.GetActiveTake(item)
  local changes = {}
  local pos = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
  local vol = reaper.GetMediaItemInfo_Value(item, "D_VOL")
  local target_pos, target_vol = anchor_s + event.start_s, AA.db_to_linear(event.gain_db)
  if record and tonumber(record.pos) and tonumber(record.vol) and tonumber(record.vol) > 0 then
    target_pos = math.max(0, pos + target_pos - record.pos)
    target_vol = vol * target_vol / record.vol
  end
  if differs(pos, target_pos) then changes.pos = target_pos end
  if differs(vol, target_vol) then changes.vol = target_vol end
  local placed_path = record and record.stem_path or AA.take_file(take)
  local render_take = AA.take_with_cache(item, event.cache_key)
  local missing = {}
  for _, v in ipairs(variations or {}) do
    if v.stem_path and not AA.take_with_cache(item, v.cache_key) then missing[#missing + 1] = v end
  end
  if #missing > 0 then
    changes.variations = missing -- added as takes in order; then the event's own one is active
    changes.length = event.end_s - event.start_s
    changes.new_take = true
  elseif render_take and render_take ~= take then
    changes.take = render_take -- a variation the item already has: make it the active take
  elseif render_take then
    -- the active take already plays this render (a version that only renamed its file)
  elseif event.stem_path and placed_path ~= event.stem_path then
    changes.file = event.stem_path
    changes.length = event.end_s - event.start_s
    changes.new_take = new_take or nil
  end
  for _, fade in ipairs({ { "fade_in_s", "D_FADEINLEN" }, { "fade_out_s", "D_FADEOUTLEN" } }) do
    local name, key = fade[1], fade[2]
    local want = event[name]
    local before = record and tonumber(record[name])
    local current = reaper.GetMediaItemInfo_Value(item, key)
    -- A fade the server asks for is applied unless the designer set their own since.
    if want and differs(want, before) and (before == nil and current == 0 or not differs(current, before)) then
      changes[key] = want
    end
  end
  local _, name = reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", "", false)
  if take and not changes.new_take and (record and record.description ~= event.description
    or not record and name ~= event.description) then
    changes.name = event.description
  end
  if next(changes) == nil and record and (differs(record.start_s, event.start_s)
    or differs(record.gain_db, event.gain_db) or record.stem_path ~= event.stem_path
    or (event.seed and record.seed ~= event.seed)) then
    changes.record_only = true -- the event moved under a hand-moved item by exactly the hand move
  end
  return changes
end

-- The list of actions that bring the project to `scene` ({version, anchor_s, events, failed}).
-- opts.only: event ids to look at (nil: all); opts.keep_others: do not remove unknown items.
function AA.plan_sync(session, scene, opts)
  opts = opts or {}
  local items = AA.session_items(session)
  local wanted, keep = {}, {}
  local actions = {}
  for _, raw in ipairs(scene.events or {}) do
    local event = AA.scene_event(raw)
    wanted[event.id] = event
    if not opts.only or opts.only[event.id] then
      local live = {}
      for _, item in ipairs(items[event.id] or {}) do live[#live + 1] = item end
      if #live == 0 then
        actions[#actions + 1] = { op = "insert", event = event }
      else
        for _, item in ipairs(live) do
          local new_take = opts.new_takes and opts.new_takes[event.id]
          local changes = AA.item_changes(item, event, scene.anchor_s, new_take,
            new_take and scene.variations and scene.variations[event.id])
          if next(changes) ~= nil then actions[#actions + 1] = { op = "update", item = item, event = event, changes = changes } end
        end
      end
    end
  end
  for _, failed in ipairs(scene.failed or {}) do keep[tostring(failed.id)] = true end
  if not opts.keep_others then
    for event_id, list in pairs(items) do
      if not wanted[event_id] and not keep[event_id] then
        for _, item in ipairs(list) do actions[#actions + 1] = { op = "remove", item = item, event_id = event_id } end
      end
    end
  end
  return actions
end

-- A new child track at the end of the session folder (made if missing), keeping the folder
-- closed after it. Only while the pinned project is the active tab (see project_is_active).
function AA.new_event_track(session, label, description, event_id, color)
  if not AA.project_is_active() then error("the scene's project is not the active tab", 0) end
  local folder = AA.find_folder(session)
  if not folder then
    local index = reaper.CountTracks(AA.proj)
    reaper.InsertTrackAtIndex(index, true)
    folder = reaper.GetTrack(AA.proj, index)
    reaper.GetSetMediaTrackInfo_String(folder, "P_NAME", "AudioAgent: " .. AA.utf8_prefix(label, 60), true)
    AA.track_ext(folder, AA.EXT_SESSION, session)
    AA.track_ext(folder, AA.EXT_ROLE, "folder")
    if color then reaper.SetMediaTrackInfo_Value(folder, "I_CUSTOMCOLOR", color) end
  end
  local last = AA.last_child(folder)
  local index, depth
  if last then
    index = AA.track_index(last) + 1
    depth = reaper.GetMediaTrackInfo_Value(last, "I_FOLDERDEPTH")
    reaper.SetMediaTrackInfo_Value(last, "I_FOLDERDEPTH", 0)
  else
    index = AA.track_index(folder) + 1
    depth = -1
    reaper.SetMediaTrackInfo_Value(folder, "I_FOLDERDEPTH", 1)
  end
  reaper.InsertTrackAtIndex(index, true)
  local track = reaper.GetTrack(AA.proj, index)
  reaper.SetMediaTrackInfo_Value(track, "I_FOLDERDEPTH", depth)
  reaper.GetSetMediaTrackInfo_String(track, "P_NAME", description, true)
  AA.track_ext(track, AA.EXT_SESSION, session)
  AA.track_ext(track, AA.EXT_EVENT, event_id)
  if color then reaper.SetMediaTrackInfo_Value(track, "I_CUSTOMCOLOR", color) end
  return track
end

-- Which render (cache key) and variation (seed) a take plays.
function AA.mark_take(take, event)
  if event.cache_key then reaper.GetSetMediaItemTakeInfo_String(take, AA.EXT_TAKE_CACHE, event.cache_key, true) end
  if event.seed then
    reaper.GetSetMediaItemTakeInfo_String(take, AA.EXT_TAKE_SEED, ("%d"):format(math.floor(event.seed)), true)
  end
end

local function write_placed(item, event)
  AA.item_ext(item, AA.EXT_PLACED, json.encode({
    start_s = event.start_s, end_s = event.end_s, gain_db = event.gain_db, stem_path = event.stem_path,
    description = event.description, fade_in_s = event.fade_in_s, fade_out_s = event.fade_out_s,
    target_lufs = event.target_lufs, seed = event.seed, cache_key = event.cache_key, pos = reaper.GetMediaItemInfo_Value(item, "D_POSITION"), vol = reaper.GetMediaItemInfo_Value(item, "D_VOL"),
  }))
end

-- Apply planned actions. check_path(path) refuses paths outside the stem root. Returns the
-- items inserted and a list of per-event failure messages (one bad stem does not stop the rest:
-- the next sync retries it).
function AA.apply_actions(session, scene, actions, check_path, label)
  local inserted, failures, old_sources = {}, {}, {}
  for _, action in ipairs(actions) do
    local ok, err = pcall(function()
      local event = action.event
      if action.op == "insert" then
        local path = AA.placed_file(session, check_path(event.stem_path))
        local track = AA.new_event_track(session, label or session, event.description, event.id, scene.color)
        local item = reaper.AddMediaItemToTrack(track)
        inserted[#inserted + 1] = item
        if scene.color then reaper.SetMediaItemInfo_Value(item, "I_CUSTOMCOLOR", scene.color) end
        if scene.group_id then reaper.SetMediaItemInfo_Value(item, "I_GROUPID", scene.group_id) end
        local take = reaper.AddTakeToMediaItem(item)
        local source = reaper.PCM_Source_CreateFromFile(path)
        reaper.SetMediaItemTake_Source(take, source)
        AA.build_peaks(source)
        AA.mark_take(take, event)
        reaper.SetMediaItemInfo_Value(item, "D_POSITION", scene.anchor_s + event.start_s)
        reaper.SetMediaItemInfo_Value(item, "D_LENGTH", event.end_s - event.start_s)
        reaper.SetMediaItemInfo_Value(item, "D_VOL", AA.db_to_linear(event.gain_db))
        if event.fade_in_s then reaper.SetMediaItemInfo_Value(item, "D_FADEINLEN", event.fade_in_s) end
        if event.fade_out_s then reaper.SetMediaItemInfo_Value(item, "D_FADEOUTLEN", event.fade_out_s) end
        reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", event.description, true)
        reaper.GetSetMediaItemInfo_String(item, "P_NOTES", event.description, true)
        AA.item_ext(item, AA.EXT_EVENT, event.id)
        AA.item_ext(item, AA.EXT_SESSION, session)
        write_placed(item, event)
      elseif action.op == "update" then
        local item, changes = action.item, action.changes
        if not AA.alive(item, "MediaItem*") then return end
        local take = reaper.GetActiveTake(item)
        if changes.variations then
          -- A re-roll of N: every variation is a new take (named "<event> #<take number>"), the
          -- earlier takes stay; the one the server plays (the event's cache key) is active.
          changes.previous_take = take
          for _, v in ipairs(changes.variations) do
            local path = AA.placed_file(session, check_path(v.stem_path))
            local added = reaper.AddTakeToMediaItem(item)
            local source = reaper.PCM_Source_CreateFromFile(path)
            reaper.SetMediaItemTake_Source(added, source)
            AA.build_peaks(source)
            reaper.GetSetMediaItemTakeInfo_String(added, "P_NAME",
              ("%s #%d"):format(event.description, reaper.CountTakes(item)), true)
            AA.mark_take(added, { cache_key = v.cache_key, seed = v.seed })
          end
          take = AA.take_with_cache(item, event.cache_key) or reaper.GetTake(item, reaper.CountTakes(item) - 1)
          reaper.SetActiveTake(take)
          reaper.SetMediaItemInfo_Value(item, "D_LENGTH", changes.length)
        elseif changes.take then
          reaper.SetActiveTake(changes.take)
          take = changes.take
        elseif changes.file and changes.new_take then
          -- A re-roll: the new variation is a new take, the earlier ones stay for A/B.
          local path = AA.placed_file(session, check_path(changes.file))
          changes.previous_take = take
          take = reaper.AddTakeToMediaItem(item)
          local source = reaper.PCM_Source_CreateFromFile(path)
          reaper.SetMediaItemTake_Source(take, source)
          AA.build_peaks(source)
          reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME",
            ("%s #%d"):format(event.description, reaper.CountTakes(item)), true)
          reaper.SetActiveTake(take)
          AA.mark_take(take, event)
          reaper.SetMediaItemInfo_Value(item, "D_LENGTH", changes.length)
        elseif changes.file then
          local path = AA.placed_file(session, check_path(changes.file))
          if not take then error("an Audio-Agent item has no take to replace", 0) end
          local old = AA.set_take_file(item, take, path)
          if old then old_sources[#old_sources + 1] = old end
          take = reaper.GetActiveTake(item)
          reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS", 0)
          reaper.SetMediaItemInfo_Value(item, "D_LENGTH", changes.length)
          AA.mark_take(take, event)
        end
        if take and not changes.take and not changes.file then
          local _, key = reaper.GetSetMediaItemTakeInfo_String(take, AA.EXT_TAKE_CACHE, "", false)
          if key == "" then AA.mark_take(take, event) end -- placed from a stem message, before its key was known
        end
        if changes.pos then reaper.SetMediaItemInfo_Value(item, "D_POSITION", changes.pos) end
        if changes.vol then reaper.SetMediaItemInfo_Value(item, "D_VOL", changes.vol) end
        if changes.D_FADEINLEN then reaper.SetMediaItemInfo_Value(item, "D_FADEINLEN", changes.D_FADEINLEN) end
        if changes.D_FADEOUTLEN then reaper.SetMediaItemInfo_Value(item, "D_FADEOUTLEN", changes.D_FADEOUTLEN) end
        if changes.name and take then
          reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", changes.name, true)
          reaper.GetSetMediaItemInfo_String(item, "P_NOTES", changes.name, true)
        end
        write_placed(item, event)
      elseif action.op == "remove" then
        local item = action.item
        if not AA.alive(item, "MediaItem*") then return end
        local track = reaper.GetMediaItem_Track(item)
        reaper.DeleteTrackMediaItem(track, item)
        -- An emptied event track of ours goes too, unless the user put FX on it.
        if reaper.CountTrackMediaItems(track) == 0 and reaper.TrackFX_GetCount(track) == 0
          and AA.track_ext(track, AA.EXT_SESSION) == session and AA.track_ext(track, AA.EXT_ROLE) ~= "folder" then
          AA.delete_track_keeping_folders(track)
        end
      end
    end)
    if not ok then
      failures[#failures + 1] = ("%s: %s"):format(action.event and action.event.description or action.event_id, tostring(err))
    end
  end
  for _, source in ipairs(old_sources) do reaper.PCM_Source_Destroy(source) end
  return inserted, failures
end

-- Record the version this project now shows (and where the scene sits).
function AA.remember_session(session, fields)
  local meta = AA.session_meta(session) or {}
  local changed = false
  for k, v in pairs(fields) do
    if meta[k] ~= v then meta[k] = v changed = true end
  end
  if changed then AA.set_proj("session:" .. session, json.encode(meta)) end
  if AA.get_proj("last_session") ~= session then AA.set_proj("last_session", session) end
end

-- The hand changes of a session's items against what we placed: moves, trims, volume and
-- deletions, as structured session edits the server takes (`change` objects).
function AA.hand_changes(session, scene_anchor_s)
  local items = AA.session_items(session)
  local changes = {}
  local meta = AA.session_meta(session) or {}
  for event_id, list in pairs(items) do
    local item = list[1]
    local record = AA.placed(item)
    if record and tonumber(record.pos) then
      local pos = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
      local length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
      local vol = reaper.GetMediaItemInfo_Value(item, "D_VOL")
      local start_s = record.start_s + (pos - record.pos)
      local end_s = start_s + length
      if differs(pos, record.pos) or differs(length, record.end_s - record.start_s) then
        changes[#changes + 1] = { op = "move", event_id = event_id, start_s = math.max(0, start_s), end_s = end_s }
      end
      -- Another take chosen: that variation (its seed) becomes the event's.
      local active = reaper.GetActiveTake(item)
      local _, seed_text = reaper.GetSetMediaItemTakeInfo_String(active, AA.EXT_TAKE_SEED, "", false)
      local seed = tonumber(seed_text)
      if seed and tonumber(record.seed) and seed ~= tonumber(record.seed) then
        changes[#changes + 1] = { op = "set_seed", event_id = event_id, seed = seed }
      end
      -- A volume trim becomes the event's loudness target moved by as many dB.
      if differs(vol, record.vol) and vol > 0 and record.vol > 0 and tonumber(record.target_lufs) then
        changes[#changes + 1] = { op = "set_loudness", event_id = event_id,
          target_lufs = record.target_lufs + 20 * math.log(vol / record.vol, 10) }
      end
    end
  end
  for _, event_id in ipairs(meta.events or {}) do
    if not items[event_id] then changes[#changes + 1] = { op = "delete", event_id = event_id } end
  end
  table.sort(changes, function(a, b) return a.event_id .. a.op < b.event_id .. b.op end)
  return changes
end

------------------------------------------------------------------------------------------------
-- A run: one client job, polled from a defer loop. Nothing is held open across defer cycles;
-- each cycle that changes the project wraps exactly that change in one undo block (REAPER's
-- undo is a project snapshot: anything left changed outside a block would be swept into the
-- designer's next undo point), and a cycle that changes nothing makes no undo point.
------------------------------------------------------------------------------------------------
local Run = {}
Run.__index = Run
AA.Run = Run

function AA.new_run(opts)
  local run = setmetatable({
    kind = opts.kind, -- "generate" | "video" | "edit" | "undo" | "redo" | "sync"
    title = opts.title,
    session = opts.session,
    anchor_s = opts.anchor_s or 0, -- raw timeline seconds (no project time offset)
    prompt = opts.prompt or "",
    client_args = opts.client_args,
    inserted = {}, -- items this run added while the job ran: taken out again if it fails
    stems = {}, -- stem_ready events not yet placed
    finished = false,
    state = "status",
  }, Run)
  return run
end

function Run:console(text)
  reaper.ShowConsoleMsg("AudioAgent: " .. text .. "\n")
end

-- Start: ask the server's status in the background (the UI never waits on the client), then
-- start the job once the answer is in.
-- While a run lives, the global ext state names it (so "Cancel running job" finds its job) and
-- the action's toolbar button shows as on.
function Run:set_running(on)
  if not self.command_id then -- this action's own button, read once while the action runs
    local _, _, section, command_id = reaper.get_action_context()
    self.section, self.command_id = section, command_id or 0
  end
  local section, command_id = self.section, self.command_id
  if on then
    reaper.SetExtState(AA.SECTION, "running", json.encode({ session = self.session, job = self.job,
      title = self.title, paths = self.paths.cancel, progress = self.last_progress }), false)
  elseif self.owns_running then
    reaper.DeleteExtState(AA.SECTION, "running", false)
  end
  self.owns_running = on
  if command_id and command_id ~= 0 then
    reaper.SetToggleCommandState(section, command_id, on and 1 or 0)
    reaper.RefreshToolbar2(section, command_id)
  end
end

function Run:start()
  -- The project the action pinned when it started; a run chained after another (changes, then
  -- the request; a sync after a conflict) stays with it even if the active tab changed since.
  self.proj = AA.proj ~= 0 and AA.proj or AA.pin_project()
  self.paths = AA.new_job_paths(self.kind, self.session)
  local ok, err = AA.start_client({ "status" }, self.paths.status)
  if not ok then return self:fail(err) end
  self.started_s = reaper.time_precise()
  self.last_activity_s = self.started_s
  self:set_running(true)
  reaper.atexit(function() self:on_exit() end)
  local function loop()
    if self.finished then return end
    local poll_ok, poll_err = pcall(self.poll, self)
    if not poll_ok then self:fail(tostring(poll_err)) end
    if not self.finished then reaper.defer(loop) end
  end
  reaper.defer(loop)
  return true
end

function Run:poll()
  if self.state == "status" then return self:poll_status() end
  for _, line in ipairs(self.reader.read()) do
    self.last_activity_s = reaper.time_precise()
    self:dispatch(line)
    if self.finished then return end
  end
  self:place_pending()
  if not self.finished then self:check_client_alive() end
end

function Run:poll_status()
  local code = AA.exit_status(self.paths.status)
  if code == nil then
    if reaper.time_precise() - self.started_s > AA.config.status_timeout_s then
      return self:fail(("the audio-agent client gave no status within %d s"):format(AA.config.status_timeout_s))
    end
    return
  end
  local pong, message = AA.parse_status(code, AA.read_file(self.paths.status.log))
  if not pong then return self:fail(message) end
  self.stem_root = AA.stem_root_of(pong)
  if not self.stem_root then return self:fail("the server did not say where its stems live (stem_root)") end
  local args = {}
  for _, a in ipairs(self.client_args) do args[#args + 1] = a end
  args[#args + 1] = "--events-file"
  args[#args + 1] = self.paths.events
  self.reader = AA.line_reader(self.paths.events)
  local ok, err = AA.start_client(args, self.paths)
  if not ok then return self:fail(err) end
  self.state = "job"
  self.last_activity_s = reaper.time_precise()
  self:console(("%s: started (%s)"):format(self.title, self.session))
end

-- One events-file line: a server message, handled; anything it raises fails the whole run.
function Run:dispatch(line)
  local ok, message = pcall(json.decode, line)
  if not ok or type(message) ~= "table" then
    self:console("ignored a line that is not a JSON object: " .. line:sub(1, 80))
    return
  end
  local handled, err = pcall(self.handle, self, message)
  if not handled then self:fail(tostring(err)) end
end

-- The client writes error/done lines itself; this catches a client that died without a word
-- (crash, killed) or went silent.
function Run:check_client_alive()
  local status = AA.exit_status(self.paths)
  if status then
    for _, line in ipairs(self.reader.read()) do -- a last line may have landed just before it exited
      self:dispatch(line)
      if self.finished then return end
    end
    if self.finished or self.waiting then return end
    local log = trim(AA.read_file(self.paths.log) or "")
    local last = log:match("([^\n]*)$") or ""
    return self:fail(("the audio-agent client exited (status %s) before the job finished%s"):format(
      tostring(status), last ~= "" and (": " .. last) or ""))
  end
  if reaper.time_precise() - self.last_activity_s > AA.config.stall_s then
    self:fail(("no message from the audio-agent client for %d s; giving up"):format(AA.config.stall_s))
  end
end

function Run:handle(message)
  local kind = message.type
  if kind == "accepted" then
    self.job = message.job
    self:set_running(true)
  elseif kind == "progress" then
    self:show_progress(message)
  elseif kind == "plan" then
    self.plan_version = message.version
    self.plan_seeds = {}
    for _, event in ipairs(message.events or {}) do self.plan_seeds[tostring(event.id)] = event.seed end
  elseif kind == "stem_ready" then
    if type(message.event_id) ~= "string" then error("stem_ready without an event_id", 0) end
    -- New scenes land stem by stem; edits are applied in one go when the version is done.
    if self.kind == "generate" or self.kind == "video" then self.stems[#self.stems + 1] = message end
  elseif kind == "done" then
    local manifest = message.manifest
    if type(manifest) == "string" then manifest = json.decode(manifest) end
    self:on_scene(tonumber(message.version) or self.plan_version, manifest or {})
  elseif kind == "sessions" then
    self.finished = true
    self:set_running(false)
    if self.on_sessions then self.on_sessions(message.sessions or {}) end
  elseif kind == "session" then
    local info = message.info or {}
    local seeds = {}
    for _, event in ipairs((info.plan or {}).events or {}) do seeds[tostring(event.id)] = event.seed end
    self.plan_seeds = seeds
    self:on_scene(tonumber(info.current_version) or 0, info.manifest or { events = {} }, info)
  elseif kind == "error" then
    local text = message.message or "the server reported an error"
    if message.field and message.field ~= "" and message.field ~= json.null then
      text = text .. " (field: " .. tostring(message.field) .. ")"
    end
    if message.code == "conflict" then self.conflict = message end
    self:fail(text)
  end
end

function Run:show_progress(message)
  local fraction = tonumber(message.fraction) or 0
  local stage = tostring(message.stage or "")
  local last = self.last_progress
  if last and last.stage == stage and fraction - last.fraction < 0.1 and fraction < 1 then return end
  self.last_progress = { stage = stage, fraction = fraction }
  self:console(("%s: %s %d%%"):format(self.title, stage, math.floor(fraction * 100 + 0.5)))
  if self.owns_running then self:set_running(true) end -- the panel shows it
end

-- Every path the server hands us must be a file inside its stem root.
function Run:checked_stem_path(path)
  if type(path) ~= "string" or not AA.normalize_path(path) then
    error(("refusing stem path %s: it is empty or contains '..'"):format(tostring(path)), 0)
  end
  if not AA.path_is_under(path, self.stem_root) then
    error(("refusing stem path %s: it is outside the server's stem root %s"):format(path, self.stem_root), 0)
  end
  if not reaper.file_exists(path) then error("stem file not found: " .. path, 0) end
  return path
end

function Run:label()
  return self.prompt ~= "" and self.prompt or self.session
end

-- Apply `actions` as one undo point (none when there is nothing to do).
function Run:apply(scene, actions, description)
  if #actions == 0 then return {}, {} end
  reaper.Undo_BeginBlock2(AA.proj)
  local ok, inserted, failures = pcall(AA.apply_actions, self.session, scene, actions,
    function(path) return self:checked_stem_path(path) end, self:label())
  reaper.Undo_EndBlock2(AA.proj, description, -1)
  reaper.UpdateArrange()
  if not ok then error(inserted, 0) end
  return inserted, failures
end

-- Colour and item group of this run's scene (the group id is chosen once, then kept in meta).
function Run:styled(scene)
  local meta = AA.session_meta(self.session) or {}
  self.group_id = self.group_id or tonumber(meta.group_id) or AA.new_group_id()
  scene.color = AA.session_color(self.session)
  scene.group_id = self.group_id
  return scene
end

-- The scene's region spans the scene; returns what to do about it (nil when it is right).
function Run:region_change(anchor_s, duration_s, number)
  if not duration_s or duration_s <= 0 then return nil end
  local name = "AudioAgent: " .. AA.utf8_prefix(self:label(), 60)
  local region = AA.find_region(number)
  if not region then return { create = true, name = name } end
  if differs(region.pos, anchor_s) or differs(region["end"], anchor_s + duration_s) then
    return { number = region.number, name = region.name }
  end
  return nil
end

-- Stems that arrived for a new scene: placed in this cycle, one undo point for the batch,
-- unless the scene's project is not the active tab (then they wait for it).
function Run:place_pending()
  if #self.stems == 0 then return end
  if not AA.project_is_active() then
    if not self.told_inactive then
      self.told_inactive = true
      self:console(self.title .. ": waiting until the scene's project tab is active again")
    end
    return
  end
  local scene, only = self:styled({ anchor_s = self.anchor_s, events = {} }), {}
  for _, stem in ipairs(self.stems) do
    scene.events[#scene.events + 1] = stem
    only[stem.event_id] = true
  end
  self.stems = {}
  local actions = AA.plan_sync(self.session, scene, { only = only, keep_others = true })
  local inserted, failures = self:apply(scene, actions, "AudioAgent: " .. self.title)
  for _, item in ipairs(inserted) do self.inserted[#self.inserted + 1] = item end
  if #failures > 0 then error(failures[1], 0) end
end

-- The server's version of the scene is known (done, or the session state): make the project
-- match it. Waits while another project tab is active.
function Run:on_scene(version, manifest, info)
  self.scene = { version = version, manifest = manifest, info = info }
  self.waiting = true
  self:finish_scene()
end

function Run:finish_scene()
  if not AA.project_is_active() then
    if not self.told_inactive then
      self.told_inactive = true
      self:console(self.title .. ": waiting until the scene's project tab is active again")
    end
    reaper.defer(function() if not self.finished then self:finish_scene() end end)
    return
  end
  local version, manifest, info = self.scene.version, self.scene.manifest, self.scene.info
  if self.kind == "changes" then
    reaper.Undo_BeginBlock2(AA.proj) -- record-only change, folded into this run's one undo point
  end
  local meta = AA.session_meta(self.session) or {}
  local anchor_s = tonumber(meta.anchor_s)
  if self.kind == "generate" or self.kind == "video" then anchor_s = self.anchor_s end
  if not anchor_s then
    local server_anchor = tonumber((info and info.anchor_s) or manifest.anchor_s) or 0
    anchor_s = math.max(0, server_anchor - AA.time_offset_s())
  end
  self.anchor_s = anchor_s
  local events = {}
  for i, event in ipairs(manifest.events or {}) do -- the manifest has no seeds; the plan has
    events[i] = event
    if event.seed == nil and self.plan_seeds and self.plan_seeds[tostring(event.id)] then
      local copy = {}
      for k, v in pairs(event) do copy[k] = v end
      copy.seed = self.plan_seeds[tostring(event.id)]
      events[i] = copy
    end
  end
  local scene = self:styled({ version = version, anchor_s = anchor_s, events = events,
    failed = manifest.failed or {}, variations = AA.variations_by_event(manifest.variations) })
  local actions = AA.plan_sync(self.session, scene, { new_takes = self.new_takes })
  local duration_s = tonumber(manifest.duration_s)
  local region = self:region_change(anchor_s, duration_s, tonumber(meta.region))
  local ids = {}
  for _, e in ipairs(scene.events) do ids[#ids + 1] = tostring(e.id) end
  local fields = { anchor_s = anchor_s, version = version, events = ids, group_id = self.group_id }
  if self.prompt ~= "" then fields.prompt = self.prompt end
  local meta_changes = false
  local current = AA.session_meta(self.session) or {}
  if current.version ~= version or current.anchor_s ~= anchor_s or json.encode(current.events or {}) ~= json.encode(ids)
    or AA.get_proj("last_session") ~= self.session or current.group_id ~= self.group_id or region then
    meta_changes = true
  end
  local failures = {}
  if self.kind == "changes" then
    AA.absorb_hand_changes(self.session)
    actions = AA.plan_sync(self.session, scene, { new_takes = self.new_takes })
    meta_changes = true
  end
  if #actions > 0 or meta_changes then
    if self.kind ~= "changes" then reaper.Undo_BeginBlock2(AA.proj) end
    local ok, inserted, fails = pcall(AA.apply_actions, self.session, scene, actions,
      function(path) return self:checked_stem_path(path) end, self:label())
    if region and region.create then
      fields.region = reaper.AddProjectMarker2(AA.proj, true, anchor_s, anchor_s + duration_s, region.name, -1,
        AA.session_color(self.session))
    elseif region then
      reaper.SetProjectMarker3(AA.proj, region.number, true, anchor_s, anchor_s + duration_s, region.name,
        AA.session_color(self.session))
    end
    -- Only events that have an item now count as placed: one that could not be placed must not
    -- look like an item the designer deleted.
    local present, placed_ids = AA.session_items(self.session), {}
    for _, id in ipairs(ids) do
      if present[id] then placed_ids[#placed_ids + 1] = id end
    end
    fields.events = setmetatable(placed_ids, json.array_mt)
    AA.remember_session(self.session, fields)
    if self.new_takes and AA.config.audition_rerolls then AA.audition_new_takes(actions) end
    reaper.Undo_EndBlock2(AA.proj, "AudioAgent: " .. self.title, -1)
    if not ok then fails = { tostring(inserted) } end
    failures = fails or {}
  end
  self.finished = true
  self:set_running(false)
  reaper.UpdateArrange()
  local parts = {}
  local rendered = {}
  for _, f in ipairs(manifest.failed or {}) do rendered[#rendered + 1] = ("- %s: %s"):format(f.description or f.id, f.error or "failed") end
  if #rendered > 0 then parts[#parts + 1] = "Some events could not be rendered:\n" .. table.concat(rendered, "\n") end
  if #failures > 0 then
    parts[#parts + 1] = "Some events could not be placed (run \"Sync scene\" to try again):\n- "
      .. table.concat(failures, "\n- ")
  end
  if #parts > 0 then reaper.ShowMessageBox(table.concat(parts, "\n\n"), "AudioAgent", 0) end
  self:console(("%s: done (%s, version %s)"):format(self.title, self.session, tostring(version)))
  if self.on_success then self.on_success() end
end

-- Take out what this run inserted (a failed new scene leaves nothing half-made).
function Run:remove_inserted()
  local alive = {}
  for _, item in ipairs(self.inserted) do
    if AA.alive(item, "MediaItem*") then alive[#alive + 1] = { op = "remove", item = item } end
  end
  self.inserted = {}
  if #alive == 0 then return end
  reaper.Undo_BeginBlock2(AA.proj)
  pcall(AA.apply_actions, self.session, {}, alive, function(p) return p end, self:label())
  -- The scene folder goes too once nothing of the scene is left in it.
  local folder = AA.find_folder(self.session)
  if folder and AA.last_child(folder) == nil and reaper.CountTrackMediaItems(folder) == 0 then
    reaper.DeleteTrack(folder)
  end
  reaper.Undo_EndBlock2(AA.proj, "AudioAgent: " .. self.title .. " (failed, removed)", -1)
end

function Run:fail(message)
  if self.finished then return false end
  self.finished = true
  self:set_running(false)
  if AA.project_is_active() then self:remove_inserted() end
  reaper.UpdateArrange()
  if self.conflict then
    message = message .. "\n\nThe scene changed on the server since this project last synced. "
      .. "Run \"Sync scene\" to bring the project up to date, then try again."
  end
  reaper.ShowMessageBox(message, "AudioAgent: " .. self.title .. " failed", 0)
  self:console(self.title .. " failed: " .. message)
  if self.conflict and self.kind ~= "sync" then -- recover: show the designer the server's scene
    AA.new_run({ kind = "sync", title = "Sync scene", session = self.session,
      client_args = { "get-session", "--session", self.session } }):start()
  end
  return false
end

-- The user stopped the script (or REAPER is closing): cancel the server job and leave nothing
-- half-inserted.
function Run:on_exit()
  if self.finished then return end
  self.finished = true
  self:set_running(false)
  if self.job then
    AA.start_client({ "cancel", "--job", self.job }, self.paths.cancel)
    self:console(self.title .. ": stopped; asked the server to cancel job " .. self.job)
  end
  if AA.project_is_active() then self:remove_inserted() end
end

-- After a version that took the designer's own changes, their items' records take the values
-- they now have (the server's event now says the same), so the sync that follows leaves them.
function AA.absorb_hand_changes(session)
  for _, list in pairs(AA.session_items(session)) do
    for _, item in ipairs(list) do
      local record = AA.placed(item)
      if record and tonumber(record.pos) and tonumber(record.vol) and record.vol > 0 then
        local pos = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
        local vol = reaper.GetMediaItemInfo_Value(item, "D_VOL")
        local delta_db = vol > 0 and 20 * math.log(vol / record.vol, 10) or 0
        record.start_s = record.start_s + (pos - record.pos)
        record.end_s = record.start_s + reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
        record.gain_db = record.gain_db + delta_db
        if tonumber(record.target_lufs) then record.target_lufs = record.target_lufs + delta_db end
        record.pos, record.vol = pos, vol
        AA.item_ext(item, AA.EXT_PLACED, json.encode(record))
      end
    end
  end
end

-- A request about an existing scene: the designer's own changes go first (one version), then
-- the request itself, each naming the version this project shows; each ends with a sync.
-- opts: kind, title, session, args (the client words before --session; nil: changes only),
-- changes (structured changes the request itself carries, as a changes file).
function AA.write_changes(session, changes)
  local paths = AA.new_job_paths("changes", session)
  local path = paths.events:gsub("%.jsonl$", "-changes.json")
  local handle = io.open(path, "wb")
  if not handle then error("cannot write the changes file " .. path, 0) end
  handle:write(json.encode(setmetatable(changes, json.array_mt)))
  handle:close()
  return path
end

function AA.request_run(opts)
  local session = opts.session
  local function start_request()
    if not opts.args and not opts.changes then return end
    local args = {}
    for _, a in ipairs(opts.args or { "edit" }) do args[#args + 1] = a end
    if opts.changes then
      args[#args + 1] = "--changes-file"
      args[#args + 1] = AA.write_changes(session, opts.changes)
    end
    for _, a in ipairs((AA.scene_args(session))) do args[#args + 1] = a end
    local run = AA.new_run({ kind = opts.kind, title = opts.title, session = session, client_args = args })
    run.new_takes = opts.new_takes
    run:start()
  end
  local changes = AA.hand_changes(session)
  if #changes == 0 then return start_request() end
  local ok, file = pcall(AA.write_changes, session, changes)
  if not ok then return AA.error_box(opts.title, file) end
  local args = { "edit", "--changes-file", file }
  for _, a in ipairs((AA.scene_args(session))) do args[#args + 1] = a end
  local run = AA.new_run({ kind = "changes", title = "Send my changes", session = session, client_args = args })
  run.on_success = start_request
  run:start()
end

------------------------------------------------------------------------------------------------
-- The panel's logic (AudioAgent_Panel.lua draws it with ReaImGui; the actions use the same calls)
------------------------------------------------------------------------------------------------
AA.HISTORY_MAX = 20

function AA.history()
  local ok, list = pcall(json.decode, reaper.GetExtState(AA.SECTION, "history"))
  if not ok or type(list) ~= "table" or list == json.null then return {} end
  return list
end

-- Remember a prompt (newest first, no repeats), across REAPER restarts.
function AA.history_add(prompt)
  local list = { prompt }
  for _, old in ipairs(AA.history()) do
    if old ~= prompt and #list < AA.HISTORY_MAX then list[#list + 1] = old end
  end
  reaper.SetExtState(AA.SECTION, "history", json.encode(list), true)
  return list
end

-- The default scene: at the time selection (its length), else at the cursor for 10 s.
function AA.default_scene_range()
  local sel_start, sel_end = reaper.GetSet_LoopTimeRange(false, false, 0, 0, false)
  if sel_end > sel_start then return sel_start, sel_end - sel_start end
  return reaper.GetCursorPosition(), 10
end

-- One row per event of the scene as the project shows it.
function AA.scene_rows(session)
  local meta = AA.session_meta(session) or {}
  local anchor_s = tonumber(meta.anchor_s) or 0
  local items = AA.session_items(session)
  local rows = {}
  for _, event_id in ipairs(meta.events or {}) do
    local item = items[event_id] and items[event_id][1]
    if item then
      local take = reaper.GetActiveTake(item)
      local record = AA.placed(item) or {}
      local vol = reaper.GetMediaItemInfo_Value(item, "D_VOL")
      rows[#rows + 1] = {
        id = event_id, description = record.description or event_id,
        start_s = reaper.GetMediaItemInfo_Value(item, "D_POSITION") - anchor_s,
        gain_db = vol > 0 and 20 * math.log(vol, 10) or -math.huge,
        muted = reaper.GetMediaItemInfo_Value(item, "B_MUTE") ~= 0,
        takes = take and reaper.CountTakes(item) or 0,
      }
    end
  end
  return rows
end

-- Mute is the designer's own (the server renders the event either way): one undo point.
function AA.set_event_muted(session, event_id, muted)
  local items = AA.session_items(session)[event_id] or {}
  if #items == 0 then return false end
  reaper.Undo_BeginBlock2(AA.proj)
  for _, item in ipairs(items) do reaper.SetMediaItemInfo_Value(item, "B_MUTE", muted and 1 or 0) end
  reaper.Undo_EndBlock2(AA.proj, "AudioAgent: " .. (muted and "mute " or "unmute ") .. event_id, -1)
  reaper.UpdateArrange()
  return true
end

-- Per-event requests the panel offers (the same runs the actions start).
-- The set_seed changes of a re-roll. variations (2..AA.MAX_VARIATIONS): N distinct new seeds
-- per event, rendered by the server in one batched generator call; the last is the active one
-- (REAPER adds the N takes in order, so the last added take plays, as with a single re-roll).
AA.MAX_VARIATIONS = 8
function AA.reroll_changes(event_ids, variations)
  local changes = {}
  for _, event_id in ipairs(event_ids) do
    if variations and variations > 1 then
      local seeds, seen = {}, {}
      while #seeds < variations do
        local seed = math.random(0, 2147483646)
        if not seen[seed] then seen[seed] = true seeds[#seeds + 1] = seed end
      end
      changes[#changes + 1] = { op = "set_seed", event_id = event_id, seed = seeds[#seeds],
        variations = setmetatable(seeds, json.array_mt) }
    else
      changes[#changes + 1] = { op = "set_seed", event_id = event_id, seed = math.random(0, 2147483646) }
    end
  end
  return changes
end

-- The scene and event ids (in selection order, each once) of the selected items, or nil after
-- telling the designer why: no item of a scene selected, or items of several scenes.
function AA.selected_scene_events(title)
  local session, ids, seen = nil, {}, {}
  for i = 0, math.huge do
    local item = reaper.GetSelectedMediaItem(AA.proj, i)
    if not item then break end
    local item_session, event_id = AA.item_ext(item, AA.EXT_SESSION), AA.item_ext(item, AA.EXT_EVENT)
    if item_session ~= "" and event_id ~= "" and not seen[event_id] then
      if session and item_session ~= session then
        AA.error_box(title, "the selected items belong to different scenes: select items of one scene")
        return nil
      end
      session = item_session
      seen[event_id] = true
      ids[#ids + 1] = event_id
    end
  end
  if not session then
    AA.error_box(title, "select one or more items of an Audio-Agent scene first")
  end
  return session, ids
end

function AA.reroll_events(session, event_ids, variations)
  local ids = {}
  for _, event_id in ipairs(event_ids) do ids[event_id] = true end
  local many = variations and variations > 1
  AA.request_run({ kind = "reroll", title = many and ("Re-roll %d variations"):format(variations)
    or "Re-roll into a new take", session = session, changes = AA.reroll_changes(event_ids, variations),
    new_takes = ids })
end

function AA.new_words(session, event_id, words)
  AA.request_run({ kind = "edit", title = "Regenerate with new words", session = session,
    changes = { { op = "replace_text", event_id = event_id, description = words } } })
end

-- Loudness by a number of dB: the event's loudness target moves (the record knows it).
function AA.change_loudness(session, event_id, delta_db)
  local item = (AA.session_items(session)[event_id] or {})[1]
  local record = item and AA.placed(item)
  if not record or not tonumber(record.target_lufs) then return false end
  AA.request_run({ kind = "edit", title = "Change loudness", session = session,
    changes = { { op = "set_loudness", event_id = event_id, target_lufs = record.target_lufs + delta_db } } })
  return true
end

function AA.generate(prompt, duration_s, anchor_s, options)
  options = options or {}
  AA.history_add(prompt)
  local session = AA.new_session_name("scene")
  local args = { "generate", prompt, "--duration", AA.format_number(duration_s), "--session", session,
    "--anchor", AA.format_number(math.max(0, anchor_s + AA.time_offset_s())) }
  for _, name in ipairs({ "planner", "backend" }) do
    if options[name] and options[name] ~= "" then
      args[#args + 1] = "--" .. name
      args[#args + 1] = options[name]
    end
  end
  AA.new_run({ kind = "generate", title = "Generate scene", session = session, anchor_s = anchor_s, prompt = prompt,
    client_args = args }):start()
  return session
end

-- The running job (title, job id, progress) or nil; and cancelling it.
function AA.running_job()
  local ok, running = pcall(json.decode, reaper.GetExtState(AA.SECTION, "running"))
  if not ok or type(running) ~= "table" or running == json.null then return nil end
  return running
end

function AA.cancel_running()
  local running = AA.running_job()
  if not running then return nil, "no Audio-Agent job is running" end
  if not running.job then return nil, "the running Audio-Agent action has no server job yet; try again in a moment" end
  local ok, err = AA.start_client({ "cancel", "--job", running.job }, running.paths)
  if not ok then return nil, err end
  return running.job
end

-- The server's sessions, for the browser: calls on_list(sessions) when the answer is in.
function AA.list_sessions(on_list)
  local run = AA.new_run({ kind = "sessions", title = "List sessions", session = "sessions",
    client_args = { "list-sessions" } })
  run.on_sessions = on_list
  run:start()
  return run
end

-- One frame of the panel. `ui` draws widgets and reports input (AudioAgent_Panel.lua wraps
-- ReaImGui in it; tests pass a stub): text, input, number, button, checkbox, progress,
-- same_line, separator, push_id, pop_id, selectable. `state` persists between frames.
function AA.panel_frame(state, ui)
  state.history = state.history or AA.history()
  if not state.duration_s then
    state.anchor_s, state.duration_s = AA.default_scene_range()
  end
  state.prompt = ui.input("Scene", state.prompt or "")
  for i, old in ipairs(state.history) do
    if i > 5 then break end
    if ui.selectable(old) then state.prompt = old end
  end
  state.duration_s = ui.number("Duration (s)", state.duration_s)
  state.planner = ui.input("Planner", state.planner or "")
  state.backend = ui.input("Backend", state.backend or "")
  local running = AA.running_job()
  if running then
    local progress = running.progress or {}
    ui.progress(tonumber(progress.fraction) or 0, ("%s: %s"):format(running.title or "job", progress.stage or "starting"))
    ui.same_line()
    if ui.button("Cancel") then
      local _, err = AA.cancel_running()
      state.message = err
    end
  elseif ui.button("Generate") then
    if AA.trim(state.prompt) == "" then
      state.message = "prompt is empty: describe the scene to generate"
    elseif not tonumber(state.duration_s) or tonumber(state.duration_s) <= 0 then
      state.message = "duration must be a positive number of seconds"
    else
      state.session = AA.generate(AA.trim(state.prompt), tonumber(state.duration_s), state.anchor_s,
        { planner = state.planner, backend = state.backend })
      state.history = AA.history()
      state.message = nil
    end
  end
  if state.message then ui.text(state.message) end
  ui.separator()
  local session = state.session or AA.current_session()
  if session then
    ui.text("Scene " .. session)
    if not running then
      if ui.button("Edit") and AA.trim(state.instruction or "") ~= "" then
        AA.request_run({ kind = "edit", title = "Edit scene", session = session, args = { "edit", AA.trim(state.instruction) } })
      end
      ui.same_line()
      state.instruction = ui.input("Instruction", state.instruction or "")
      for _, name in ipairs({ "Undo", "Redo", "Sync", "Send my changes" }) do
        if ui.button(name) then
          if name == "Sync" then
            AA.new_run({ kind = "sync", title = "Sync scene", session = session,
              client_args = { "get-session", "--session", session } }):start()
          elseif name == "Send my changes" then
            AA.request_run({ kind = "changes", title = "Send my changes", session = session })
          else
            AA.request_run({ kind = name:lower(), title = name .. " scene edit", session = session, args = { name:lower() } })
          end
        end
        ui.same_line()
      end
      ui.text("")
    end
    state.words = state.words or {}
    for _, row in ipairs(AA.scene_rows(session)) do
      ui.push_id(row.id)
      local muted = ui.checkbox("", not row.muted)
      if muted == row.muted then AA.set_event_muted(session, row.id, not muted) end
      ui.same_line()
      ui.text(("%s  %.2f s  %+.1f dB  %d take(s)"):format(row.description, row.start_s, row.gain_db, row.takes))
      if not running then
        ui.same_line()
        if ui.button("Re-roll") then AA.reroll_events(session, { row.id }) end
        ui.same_line()
        if ui.button("-1 dB") then AA.change_loudness(session, row.id, -1) end
        ui.same_line()
        if ui.button("+1 dB") then AA.change_loudness(session, row.id, 1) end
        state.words[row.id] = ui.input("New words", state.words[row.id] or "")
        ui.same_line()
        if ui.button("Regenerate") and AA.trim(state.words[row.id]) ~= "" then
          AA.new_words(session, row.id, AA.trim(state.words[row.id]))
          state.words[row.id] = ""
        end
      end
      ui.pop_id()
    end
  end
  ui.separator()
  if not running and ui.button("Sessions on the server") then
    AA.list_sessions(function(list) state.sessions = list end)
  end
  for _, summary in ipairs(state.sessions or {}) do
    if ui.selectable(("%s (v%s, %s events)"):format(summary.name, tostring(summary.current_version),
      tostring(summary.event_count))) then
      state.session = summary.name
      AA.new_run({ kind = "sync", title = "Sync scene", session = summary.name,
        client_args = { "get-session", "--session", summary.name } }):start()
    end
  end
end

------------------------------------------------------------------------------------------------
-- User input
------------------------------------------------------------------------------------------------
function AA.ask(title, captions, defaults)
  local sep = "\n"
  local ok, csv = reaper.GetUserInputs(title, #captions,
    table.concat(captions, ",") .. ",separator=" .. sep .. ",extrawidth=300",
    table.concat(defaults, sep))
  if not ok then return nil end
  local values = {}
  for value in (csv .. sep):gmatch("(.-)" .. sep) do values[#values + 1] = trim(value) end
  return values
end

-- End an action that made no change: an empty deferred call stops REAPER from adding an
-- automatic (empty) "ReaScript: Run" undo point.
function AA.no_undo()
  reaper.defer(function() end)
end

function AA.error_box(title, message)
  reaper.ShowMessageBox(message, "AudioAgent: " .. title, 0)
  AA.no_undo()
end

-- Session of the selected item, else the project's last one.
function AA.current_session()
  local item = reaper.GetSelectedMediaItem(AA.proj, 0)
  if item then
    local session = AA.item_ext(item, AA.EXT_SESSION)
    if session ~= "" then return session end
  end
  local last = AA.get_proj("last_session")
  return last ~= "" and last or nil
end

-- The arguments a request about an existing scene carries: the session and the version this
-- project last applied, so the server refuses an edit of a scene the designer is not seeing.
function AA.scene_args(session)
  local meta = AA.session_meta(session) or {}
  local args = { "--session", session }
  if tonumber(meta.version) then
    args[#args + 1] = "--base-version"
    args[#args + 1] = tostring(math.floor(meta.version))
  end
  return args, meta
end

return AA
