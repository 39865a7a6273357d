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

-- False for a track or item the user deleted (or undid away) since we got it: REAPER refuses
-- a dead pointer, so anything held across defer cycles is checked before use.
function AA.alive(pointer, type_name)
  return pointer ~= nil and reaper.ValidatePtr2(0, pointer, type_name)
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

-- Quote one argument for the platform shell the command line goes through.
function AA.shell_quote(arg)
  arg = tostring(arg)
  if AA.is_windows() then
    -- cmd.exe (run with /V:ON) has no escape for these inside quotes; keep the text readable.
    return '"' .. arg:gsub('"', "'"):gsub("%%", " percent"):gsub("!", ".") .. '"'
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
AA.config = { client = { "audio-agent" }, url = nil, stall_s = 180, status_timeout_ms = 20000 }

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

-- Wrap a command so stdout+stderr go to `log_path` (or the captured output) and, when given,
-- its exit status lands in `exit_path`: that is how the poll loop learns the client died.
-- Returns the line to hand to reaper.ExecProcess.
--
-- Windows: the line goes to cmd.exe as it is. macOS/Linux: REAPER's ExecProcess runs no shell;
-- it splits the line at spaces, keeping a run in '...', "..." or `...` together, with no
-- escapes at all, so no quoting can carry an arbitrary prompt through it. The shell command
-- is therefore written to `script_path` and REAPER runs `/bin/sh <script_path>`.
function AA.shell_command(argv, log_path, exit_path, script_path)
  local cmd = AA.join_command(argv)
  if log_path then cmd = cmd .. " > " .. AA.shell_quote(log_path) end
  cmd = cmd .. " 2>&1"
  if AA.is_windows() then
    if exit_path then cmd = cmd .. " & echo !ERRORLEVEL! > " .. AA.shell_quote(exit_path) end
    return 'cmd.exe /V:ON /C "' .. cmd .. '"'
  end
  if exit_path then cmd = cmd .. "; echo $? > " .. AA.shell_quote(exit_path) end
  if not script_path then error("shell_command: a script path is needed on this OS", 0) end
  local quote
  for _, q in ipairs({ '"', "'", "`" }) do
    if not script_path:find(q, 1, true) then quote = q break end
  end
  if not quote or script_path:find("[\r\n]") then
    error(("cannot run a script at %s: REAPER cannot pass a path with quotes or line breaks"):format(script_path), 0)
  end
  local handle, open_error = io.open(script_path, "wb")
  if not handle then error("cannot write " .. tostring(open_error), 0) end
  handle:write("#!/bin/sh\n# written by AudioAgent_lib.lua for one audio-agent client call\n", cmd, "\n")
  handle:close()
  return "/bin/sh " .. quote .. script_path .. quote
end

-- The timeout argument that starts a process without waiting: -2 also keeps cmd.exe's console
-- window minimised on Windows, where -1 would put one in front of REAPER for the whole job.
function AA.no_wait()
  return AA.is_windows() and -2 or -1
end

-- Ask the server for its pong (blocking, short). Returns the pong table or nil, message.
function AA.server_status(script_path)
  local ok, cmd = pcall(AA.shell_command, AA.client_argv({ "status" }), nil, nil, script_path)
  if not ok then return nil, cmd end
  local out = reaper.ExecProcess(cmd, AA.config.status_timeout_ms)
  if not out then return nil, "could not start the audio-agent client (" .. AA.config.client[1] .. ")" end
  local code, text = out:match("^(%-?%d+)\r?\n(.*)$")
  text = text or out
  if tonumber(code) ~= 0 then
    local last = trim(text):match("([^\n]*)$")
    if tonumber(code) == 127 or tonumber(code) == 9009 then -- sh / cmd.exe: no such command
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
  local ok, pong = pcall(json.decode, trim(text))
  if ok and type(pong) == "table" then return pong end
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
  while reaper.file_exists(base .. ".jsonl") or reaper.file_exists(base .. ".exit") do
    n = n + 1
    base = stem .. "-" .. n
  end
  return { events = base .. ".jsonl", exit = base .. ".exit", log = base .. ".log",
    script = base .. ".sh", status_script = base .. "-status.sh" }
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
-- Project access
------------------------------------------------------------------------------------------------
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
  local _, value = reaper.GetProjExtState(0, AA.SECTION, key)
  return value or ""
end

function AA.set_proj(key, value)
  reaper.SetProjExtState(0, AA.SECTION, key, value)
end

function AA.session_meta(session)
  local text = AA.get_proj("session:" .. session)
  if text == "" then return nil end
  local ok, meta = pcall(json.decode, text)
  return ok and meta or nil
end

-- Every item of `session`, keyed by event id (a list: the user may have duplicated one).
function AA.session_items(session)
  local by_event = {}
  for i = 0, reaper.CountMediaItems(0) - 1 do
    local item = reaper.GetMediaItem(0, i)
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
  for i = 0, reaper.CountTracks(0) - 1 do
    local track = reaper.GetTrack(0, i)
    if AA.track_ext(track, AA.EXT_SESSION) == session and AA.track_ext(track, AA.EXT_ROLE) == "folder" then
      return track
    end
  end
end

-- The last track inside `folder` (nil when it has no children).
function AA.last_child(folder)
  if reaper.GetMediaTrackInfo_Value(folder, "I_FOLDERDEPTH") ~= 1 then return nil end
  local level, last = 1, nil
  for i = AA.track_index(folder) + 1, reaper.CountTracks(0) - 1 do
    local track = reaper.GetTrack(0, i)
    last = track
    level = level + reaper.GetMediaTrackInfo_Value(track, "I_FOLDERDEPTH")
    if level <= 0 then break end
  end
  return last
end

------------------------------------------------------------------------------------------------
-- A run: one client job, polled from a defer loop, applied inside one undo block
------------------------------------------------------------------------------------------------
local Run = {}
Run.__index = Run
AA.Run = Run

function AA.new_run(opts)
  local run = setmetatable({
    kind = opts.kind, -- "generate" | "edit" | "undo" | "video"
    title = opts.title,
    session = opts.session,
    anchor_s = opts.anchor_s or 0,
    prompt = opts.prompt or "",
    client_args = opts.client_args,
    inserted_items = {}, -- {item, track} this run added: removed again on failure
    inserted_tracks = {},
    journal = {}, -- how to put back what this run changed on existing items
    old_sources = {}, -- replaced sources, destroyed only once the run succeeded
    applied = {},
    diff = {},
    finished = false,
    last_progress = nil,
  }, Run)
  return run
end

function Run:start()
  self.paths = AA.new_job_paths(self.kind, self.session)
  local pong, message = AA.server_status(self.paths.status_script)
  if not pong then return self:fail(message) end
  self.stem_root = AA.stem_root_of(pong)
  if not self.stem_root then return self:fail("the server did not say where its stems live (stem_root)") end
  -- Edits touch the items already carrying this session's event ids.
  self.items = (self.kind == "edit" or self.kind == "undo") and AA.session_items(self.session) or {}
  local args = {}
  for _, a in ipairs(self.client_args) do args[#args + 1] = a end
  args[#args + 1] = "--events-file"
  args[#args + 1] = self.paths.events
  self.reader = AA.line_reader(self.paths.events)
  -- No undo block is held open while the job runs: REAPER folds every undo point made inside
  -- an open block into it, so the user's own edits during a long render would vanish into
  -- ours. A deferred script adds no undo point of its own; on_done makes the one point, in
  -- one defer cycle, once everything is in (a failed run leaves none, having put all back).
  self.started_s = reaper.time_precise()
  self.last_activity_s = self.started_s
  reaper.atexit(function() self:on_exit() end)
  -- Do not wait; the shell wrapper records the exit status for the poll loop.
  local ok, cmd = pcall(AA.shell_command, AA.client_argv(args), self.paths.log, self.paths.exit,
    self.paths.script)
  if not ok then return self:fail(cmd) end
  -- What a no-wait call returns is not documented, so it is not read: a client that never
  -- starts shows up as an exit status (sh/cmd.exe report it) or, at worst, as silence.
  reaper.ExecProcess(cmd, AA.no_wait())
  self:console(("%s: started (%s)"):format(self.title, self.session))
  local function loop()
    if self.finished then return end
    self:poll()
    if not self.finished then reaper.defer(loop) end
  end
  reaper.defer(loop)
  return true
end

function Run:console(text)
  reaper.ShowConsoleMsg("AudioAgent: " .. text .. "\n")
end

function Run:poll()
  for _, line in ipairs(self.reader.read()) do
    self.last_activity_s = reaper.time_precise()
    self:dispatch(line)
    if self.finished then return end
  end
  self:check_client_alive()
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
  local status = AA.read_file(self.paths.exit)
  if status and status:match("%d") then
    local rest = self.reader.read() -- a last line may have landed just before it exited
    for _, line in ipairs(rest) do
      self:dispatch(line)
      if self.finished then return end
    end
    local log = trim(AA.read_file(self.paths.log) or "")
    local last = log:match("([^\n]*)$") or ""
    return self:fail(("the audio-agent client exited (status %s) before the job finished%s"):format(
      trim(status), last ~= "" and (": " .. last) or ""))
  end
  if reaper.time_precise() - self.last_activity_s > AA.config.stall_s then
    self:fail(("no message from the audio-agent client for %d s; giving up"):format(AA.config.stall_s))
  end
end

function Run:handle(message)
  local kind = message.type
  if kind == "progress" then
    self:show_progress(message)
  elseif kind == "plan" then
    self.plan_version = message.version
    if type(message.diff) == "table" then self.diff = message.diff end
  elseif kind == "stem_ready" then
    self:on_stem(message)
  elseif kind == "done" then
    self:on_done(message)
  elseif kind == "error" then
    local text = message.message or "the server reported an error"
    if message.field and message.field ~= "" and message.field ~= json.null then
      text = text .. " (field: " .. tostring(message.field) .. ")"
    end
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

function Run:position_of(start_s)
  return self.anchor_s + (tonumber(start_s) or 0)
end

------------------------------------------------------------------------------------------------
-- Inserting and changing items
------------------------------------------------------------------------------------------------
function Run:ensure_folder()
  if AA.alive(self.folder, "MediaTrack*") then return self.folder end
  self.folder = AA.find_folder(self.session)
  if self.folder then return self.folder end
  local index = reaper.CountTracks(0)
  reaper.InsertTrackAtIndex(index, true)
  local folder = reaper.GetTrack(0, index)
  local label = self.prompt ~= "" and self.prompt or self.session
  reaper.GetSetMediaTrackInfo_String(folder, "P_NAME", "AudioAgent: " .. AA.utf8_prefix(label, 60), true)
  AA.track_ext(folder, AA.EXT_SESSION, self.session)
  AA.track_ext(folder, AA.EXT_ROLE, "folder")
  table.insert(self.inserted_tracks, folder)
  self.folder = folder
  return folder
end

-- A new child track at the end of the session folder, keeping the folder closed after it.
function Run:new_event_track(description, event_id)
  local folder = self:ensure_folder()
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
  local track = reaper.GetTrack(0, index)
  reaper.SetMediaTrackInfo_Value(track, "I_FOLDERDEPTH", depth)
  reaper.GetSetMediaTrackInfo_String(track, "P_NAME", description, true)
  AA.track_ext(track, AA.EXT_SESSION, self.session)
  AA.track_ext(track, AA.EXT_EVENT, event_id)
  table.insert(self.inserted_tracks, track)
  return track
end

function Run:set_names(item, take, description)
  reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", description, true)
  reaper.GetSetMediaItemInfo_String(item, "P_NOTES", description, true)
end

function Run:insert_stem(stem)
  local path = self:checked_stem_path(stem.stem_path)
  local description = tostring(stem.description or stem.event_id)
  local track = self:new_event_track(description, stem.event_id)
  local item = reaper.AddMediaItemToTrack(track)
  table.insert(self.inserted_items, { item = item, track = track })
  local take = reaper.AddTakeToMediaItem(item)
  reaper.SetMediaItemTake_Source(take, reaper.PCM_Source_CreateFromFile(path))
  reaper.SetMediaItemInfo_Value(item, "D_POSITION", self:position_of(stem.start_s))
  reaper.SetMediaItemInfo_Value(item, "D_LENGTH", stem.end_s - stem.start_s)
  reaper.SetMediaItemInfo_Value(item, "D_VOL", AA.db_to_linear(tonumber(stem.gain_db) or 0))
  self:set_names(item, take, description)
  AA.item_ext(item, AA.EXT_EVENT, stem.event_id)
  AA.item_ext(item, AA.EXT_SESSION, self.session)
  self:remember_event(stem)
  return item
end

-- Project ext state changes go through here so a failed run can put them back too.
function Run:set_proj(key, value)
  self:record({ kind = "proj", key = key, old = AA.get_proj(key) })
  AA.set_proj(key, value)
end

function Run:remember_event(stem)
  self:set_proj(("event:%s:%s"):format(self.session, stem.event_id), json.encode({
    description = stem.description, start_s = stem.start_s, end_s = stem.end_s,
    gain_db = stem.gain_db, stem_path = stem.stem_path,
  }))
end

-- The event as this project last placed it (start_s, gain_db, ...), or nil.
function Run:placed_event(event_id)
  local text = AA.get_proj(("event:%s:%s"):format(self.session, event_id))
  if text == "" then return nil end
  local ok, record = pcall(json.decode, text)
  return ok and type(record) == "table" and record or nil
end

function Run:record(entry)
  table.insert(self.journal, entry)
end

-- Moves and gain changes shift the item by as much as the event changed, so a nudge or a
-- volume trim the user gave the item survives (with no record, the server's value is set).
function Run:move_item(item, stem)
  local current = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
  self:record({ kind = "value", item = item, key = "D_POSITION", old = current })
  local placed = self:placed_event(stem.event_id)
  local target = self:position_of(stem.start_s)
  if placed and tonumber(placed.start_s) then
    target = math.max(0, current + (tonumber(stem.start_s) or 0) - tonumber(placed.start_s))
  end
  reaper.SetMediaItemInfo_Value(item, "D_POSITION", target)
end

function Run:regain_item(item, stem)
  local current = reaper.GetMediaItemInfo_Value(item, "D_VOL")
  self:record({ kind = "value", item = item, key = "D_VOL", old = current })
  local gain_db = tonumber(stem.gain_db) or 0
  local placed = self:placed_event(stem.event_id)
  local volume = AA.db_to_linear(gain_db)
  if placed and tonumber(placed.gain_db) then
    volume = current * AA.db_to_linear(gain_db - tonumber(placed.gain_db))
  end
  reaper.SetMediaItemInfo_Value(item, "D_VOL", volume)
end

function Run:replace_source(item, stem)
  local path = self:checked_stem_path(stem.stem_path)
  local take = reaper.GetActiveTake(item)
  if not take then error("an Audio-Agent item has no take to replace", 0) end
  local _, old_name = reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", "", false)
  self:record({
    kind = "source", item = item, take = take, source = reaper.GetMediaItemTake_Source(take),
    length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH"),
    offset = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS"), name = old_name,
    notes = select(2, reaper.GetSetMediaItemInfo_String(item, "P_NOTES", "", false)),
  })
  table.insert(self.old_sources, reaper.GetMediaItemTake_Source(take))
  reaper.SetMediaItemTake_Source(take, reaper.PCM_Source_CreateFromFile(path))
  reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS", 0)
  reaper.SetMediaItemInfo_Value(item, "D_LENGTH", stem.end_s - stem.start_s)
  self:set_names(item, take, tostring(stem.description or stem.event_id))
end

local function current_source_path(item)
  local take = reaper.GetActiveTake(item)
  local source = take and reaper.GetMediaItemTake_Source(take)
  return source and reaper.GetMediaSourceFileName(source, "") or ""
end

-- Apply one event's change to the items that carry it; untouched properties stay as they are.
function Run:apply_change(stem, change)
  if self.applied[stem.event_id] then return end
  self.applied[stem.event_id] = true
  local items = {}
  for _, item in ipairs(self.items[stem.event_id] or {}) do
    if AA.alive(item, "MediaItem*") then items[#items + 1] = item end
  end
  if change == "unchanged" then return end
  if change == "removed" then return end -- removals are applied once the job is done
  if #items == 0 then
    self:insert_stem(stem)
    return
  end
  for _, item in ipairs(items) do
    if change == "changed" then
      self:replace_source(item, stem)
      self:move_item(item, stem)
      self:regain_item(item, stem)
    elseif change == "moved" then
      if stem.stem_path and current_source_path(item) ~= stem.stem_path then
        self:replace_source(item, stem) -- a new length means a new file
      end
      self:move_item(item, stem)
      self:regain_item(item, stem) -- a move may carry a loudness change too (shifts by the delta)
    elseif change == "regained" then
      self:regain_item(item, stem)
    end
  end
  self:remember_event(stem)
end

function Run:on_stem(stem)
  if type(stem.event_id) ~= "string" then error("stem_ready without an event_id", 0) end
  if self.kind == "generate" or self.kind == "video" then
    if self.applied[stem.event_id] then return end
    self.applied[stem.event_id] = true
    self:insert_stem(stem)
  else
    local change = stem.change or self.diff[stem.event_id] or "changed"
    self:apply_change(stem, change)
  end
  reaper.UpdateArrange()
end

function Run:remove_event_items(event_id)
  for _, item in ipairs(self.items[event_id] or {}) do
    if not AA.alive(item, "MediaItem*") then goto next_item end
    local track = reaper.GetMediaItem_Track(item)
    reaper.DeleteTrackMediaItem(track, item)
    -- An emptied event track goes too, unless the user put FX on it or it closes the folder
    -- (deleting that one would need folder depths rewritten).
    if reaper.CountTrackMediaItems(track) == 0 and reaper.TrackFX_GetCount(track) == 0
      and reaper.GetMediaTrackInfo_Value(track, "I_FOLDERDEPTH") == 0
      and AA.track_ext(track, AA.EXT_SESSION) == self.session then
      reaper.DeleteTrack(track)
    end
    ::next_item::
  end
  self:set_proj(("event:%s:%s"):format(self.session, event_id), "")
end

-- Finish an edit from the done manifest: changes that had no stem_ready, then removals.
function Run:reconcile(manifest)
  local by_id = {}
  for _, event in ipairs((manifest and manifest.events) or {}) do by_id[event.id] = event end
  for event_id, change in pairs(self.diff) do
    if change ~= "unchanged" and change ~= "removed" and not self.applied[event_id] then
      local event = by_id[event_id]
      if event then
        self:apply_change({
          event_id = event_id, description = event.description, start_s = event.start_s,
          end_s = event.end_s, gain_db = event.gain_db, stem_path = event.stem_path,
        }, change)
      end
    end
  end
  for event_id, change in pairs(self.diff) do
    if change == "removed" then self:remove_event_items(event_id) end
  end
end

function Run:on_done(message)
  local manifest = message.manifest
  if type(manifest) == "string" then manifest = json.decode(manifest) end
  reaper.Undo_BeginBlock2(0) -- closed by finish() in this same defer cycle
  self.undo_open = true
  if self.kind == "generate" or self.kind == "video" then
    for _, event in ipairs((manifest and manifest.events) or {}) do
      if not self.applied[event.id] then
        self:on_stem({ event_id = event.id, description = event.description, start_s = event.start_s,
          end_s = event.end_s, gain_db = event.gain_db, stem_path = event.stem_path })
      end
    end
  else
    self:reconcile(manifest)
  end
  for _, source in ipairs(self.old_sources) do reaper.PCM_Source_Destroy(source) end
  self.old_sources = {}
  local meta = AA.session_meta(self.session) or {}
  meta.anchor_s = self.anchor_s
  meta.version = message.version or self.plan_version
  if self.prompt ~= "" then meta.prompt = self.prompt end
  AA.set_proj("session:" .. self.session, json.encode(meta))
  AA.set_proj("last_session", self.session)
  self:finish(true)
  local failed = (manifest and manifest.failed) or {}
  if #failed > 0 then
    local lines = {}
    for _, f in ipairs(failed) do lines[#lines + 1] = ("- %s: %s"):format(f.description or f.id, f.error or "failed") end
    reaper.ShowMessageBox("Some events could not be rendered:\n" .. table.concat(lines, "\n"), "AudioAgent", 0)
  end
  self:console(("%s: done (%s, version %s)"):format(self.title, self.session, tostring(meta.version)))
end

-- Put the project back the way this run found it.
function Run:rollback()
  for i = #self.journal, 1, -1 do
    local entry = self.journal[i]
    if entry.kind == "proj" then
      AA.set_proj(entry.key, entry.old)
    elseif not AA.alive(entry.item, "MediaItem*") then
      -- the user deleted it meanwhile: nothing of ours to put back
    elseif entry.kind == "value" then
      reaper.SetMediaItemInfo_Value(entry.item, entry.key, entry.old)
    elseif entry.kind == "source" then
      local new_source = reaper.GetMediaItemTake_Source(entry.take)
      reaper.SetMediaItemTake_Source(entry.take, entry.source)
      if new_source and new_source ~= entry.source then reaper.PCM_Source_Destroy(new_source) end
      reaper.SetMediaItemTakeInfo_Value(entry.take, "D_STARTOFFS", entry.offset)
      reaper.SetMediaItemInfo_Value(entry.item, "D_LENGTH", entry.length)
      reaper.GetSetMediaItemTakeInfo_String(entry.take, "P_NAME", entry.name, true)
      reaper.GetSetMediaItemInfo_String(entry.item, "P_NOTES", entry.notes or "", true)
    end
  end
  self.journal = {}
  for i = #self.inserted_items, 1, -1 do
    local entry = self.inserted_items[i]
    if AA.alive(entry.item, "MediaItem*") then
      reaper.DeleteTrackMediaItem(reaper.GetMediaItem_Track(entry.item), entry.item)
    end
  end
  self.inserted_items = {}
  -- Newest first, so the folder's own depth bookkeeping unwinds in order.
  for i = #self.inserted_tracks, 1, -1 do
    local track = self.inserted_tracks[i]
    if not AA.alive(track, "MediaTrack*") then goto next_track end
    local depth = reaper.GetMediaTrackInfo_Value(track, "I_FOLDERDEPTH")
    local index = AA.track_index(track)
    if depth < 0 and index > 0 then
      local previous = reaper.GetTrack(0, index - 1)
      reaper.SetMediaTrackInfo_Value(previous, "I_FOLDERDEPTH",
        reaper.GetMediaTrackInfo_Value(previous, "I_FOLDERDEPTH") + depth)
    end
    reaper.DeleteTrack(track)
    ::next_track::
  end
  self.inserted_tracks = {}
end

function Run:finish(ok)
  if self.finished then return end
  self.finished = true
  if self.undo_open then
    self.undo_open = false
    reaper.Undo_EndBlock2(0, "AudioAgent: " .. self.title .. (ok and "" or " (failed)"), -1)
  end
  reaper.UpdateArrange()
end

function Run:fail(message)
  if self.finished then return false end
  self:rollback()
  self:finish(false)
  reaper.ShowMessageBox(message, "AudioAgent: " .. self.title .. " failed", 0)
  self:console(self.title .. " failed: " .. message)
  return false
end

-- The user stopped the script (or REAPER is closing): leave nothing half-inserted.
function Run:on_exit()
  if self.finished then return end
  self:rollback()
  self:finish(false)
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

function AA.error_box(title, message)
  reaper.ShowMessageBox(message, "AudioAgent: " .. title, 0)
end

-- Session of the selected item, else the project's last one.
function AA.current_session()
  local item = reaper.GetSelectedMediaItem(0, 0)
  if item then
    local session = AA.item_ext(item, AA.EXT_SESSION)
    if session ~= "" then return session end
  end
  local last = AA.get_proj("last_session")
  return last ~= "" and last or nil
end

return AA
