#!lua name=cru
--[[
cru.lua — the Redis function library `cru`: every state change of a job
that must be atomic. The web app, the CLI and the workers all call these,
so a job moves through one implementation whatever language submitted it.

Each function takes the key prefix as its one optional key:
  FCALL cru_submit 0 '<spec json>'          -- prefix "cru"
  FCALL cru_submit 1 myapp '<spec json>'    -- prefix "myapp"

Keys (prefix p):
  p:chunks        stream, group "workers": {job, chunk=N |
                  op=plan|abort|enqueue|finalize, [attempt], [resume=1],
                  [from=byte], [start=chunk]}
  p:job:<id>      hash: the job (fields in README "Redis fields")
  p:job:<id>:parts hash: chunk index -> "done", or its part (ETag, block id)
  p:jobs          sorted set: id by created_ms
  p:delayed       sorted set: messages waiting for a retry, by due time
  p:dead          sorted set: dead-lettered messages (JSON) by time
  p:events        capped stream: state changes and progress
  p:states        hash: state -> number of jobs
  p:workers       hash: worker id -> heartbeat JSON
  p:seq           counter for generated ids

Validation errors are replies of the form
  "ERR invalid spec: <field>: <why>"
so an app can show the message as it is.
]]

local GROUP = 'workers'
local EVENTS_MAXLEN = 100000
local MAX_SPEC_BYTES = 65536

local GRAPH_FRAGMENT = 327680           -- Graph: fragments are multiples of 320 KiB
local GRAPH_MAX_CHUNK = 62914560        -- Graph: at most 60 MiB per request
local GRAPH_DEFAULT_CHUNK = 10485760    -- 32 x 320 KiB

local function prefix_of(keys)
    local p = keys[1]
    if p == nil or p == '' then return 'cru' end
    return p
end

local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function invalid(msg)
    return redis.error_reply('ERR invalid spec: ' .. msg)
end

local function is_int(n)
    return type(n) == 'number' and n == math.floor(n) and n >= 0 and n < 2^53
end

local function is_object(t)
    if type(t) ~= 'table' then return false end
    return next(t) == nil or t[1] == nil
end

local function nonempty_string(s)
    return type(s) == 'string' and s ~= '' and not s:find('%z')
end

local function is_http_url(s)
    return type(s) == 'string' and (s:match('^https?://[^/?#]+') ~= nil) and
        not s:find('[%z%s]')
end

local function has_dotdot(path)
    return ('/' .. path .. '/'):find('/%.%./') ~= nil
end

local function unknown_field(obj, allowed, where)
    local names = {}
    for k, _ in pairs(obj) do
        if type(k) ~= 'string' or not allowed[k] then
            table.insert(names, tostring(k))
        end
    end
    if #names == 0 then return nil end
    table.sort(names)
    return where .. ': unknown field "' .. names[1] .. '"'
end

-- Removes userinfo and query string from a URL, for the job's `source`.
local function redact_url(s)
    if s:sub(1, 7) == 'file://' or s:sub(1, 1) == '/' then return s end
    local scheme, rest = s:match('^(%a[%w+.-]*://)(.*)$')
    if not scheme then return s end
    rest = rest:gsub('^[^/?#]*@', '')
    local q = rest:find('[?#]')
    if q then rest = rest:sub(1, q - 1) .. '?…' end
    return scheme .. rest
end

------------------------------------------------------------------ validation

local function check_source(src)
    if src == nil then
        return nil, 'source: missing (an absolute path, a file:// URL, or an object with "url")'
    end
    local url = src
    if type(src) == 'table' then
        if not is_object(src) then return nil, 'source: must be a string or an object' end
        local e = unknown_field(src, {url = true, headers = true, size = true}, 'source')
        if e then return nil, e end
        url = src.url
        if url == nil then return nil, 'source.url: missing' end
        if type(url) ~= 'string' then return nil, 'source.url: must be a string' end
        if src.headers ~= nil then
            if not is_object(src.headers) then return nil, 'source.headers: must be an object of strings' end
            for k, v in pairs(src.headers) do
                if type(v) ~= 'string' then return nil, 'source.headers.' .. tostring(k) .. ': must be a string' end
            end
        end
        if src.size ~= nil and not is_int(src.size) then
            return nil, 'source.size: must be a non-negative integer'
        end
    elseif type(src) ~= 'string' then
        return nil, 'source: must be a string or an object'
    end
    if url == '' then return nil, 'source: empty' end
    if url:find('%z') then return nil, 'source: contains a NUL byte' end
    local path
    if url:sub(1, 7) == 'file://' then
        path = url:sub(8)
        if path:sub(1, 1) ~= '/' then
            return nil, 'source: a file URL must be file:///absolute/path (no host)'
        end
    elseif url:sub(1, 1) == '/' then
        path = url
    elseif url:match('^[hH][tT][tT][pP][sS]?://') then
        if not url:match('^[hH][tT][tT][pP][sS]?://[^/?#@]*@?[^/?#@]+') or url:find('[%s%c]') then
            return nil, 'source: not a valid http(s) URL'
        end
        return url
    else
        return nil, 'source: must be an absolute path, a file:// URL or an http(s) URL'
    end
    if path:sub(-1) == '/' then return nil, 'source: names a directory, not a file' end
    if has_dotdot(path) then return nil, 'source: path must not contain ".." components' end
    return url
end

local function check_graph(t)
    local e = unknown_field(t, {type = true, upload_url = true, drive_id = true,
        site_id = true, me = true, path = true, token = true, conflict = true,
        api = true}, 'target')
    if e then return e end
    if t.api ~= nil and not is_http_url(t.api) then
        return 'target.api: must be an http(s) URL, as https://graph.microsoft.com/v1.0'
    end
    if t.conflict ~= nil and t.conflict ~= 'fail' and t.conflict ~= 'replace' and
        t.conflict ~= 'rename' then
        return 'target.conflict: must be one of fail, replace, rename'
    end
    if t.upload_url ~= nil then
        if not is_http_url(t.upload_url) then
            return 'target.upload_url: must be an http(s) URL'
        end
        if t.drive_id ~= nil or t.site_id ~= nil or t.me ~= nil or t.path ~= nil then
            return 'target: give upload_url, or drive_id/site_id/me with path and token, not both'
        end
        return nil
    end
    local n = 0
    for _, k in ipairs({'drive_id', 'site_id'}) do
        if t[k] ~= nil then
            if not nonempty_string(t[k]) or t[k]:find('[/?#%s]') then
                return 'target.' .. k .. ': must be a non-empty string without "/", "?", "#" or spaces'
            end
            n = n + 1
        end
    end
    if t.me ~= nil then
        if t.me ~= true then return 'target.me: must be true' end
        n = n + 1
    end
    if n == 0 then
        return 'target: graph needs upload_url, or one of drive_id, site_id, me with path and token'
    end
    if n > 1 then return 'target: give only one of drive_id, site_id, me' end
    if t.path == nil then return 'target.path: missing (the file path in the drive, as "folder/name.ext")' end
    if not nonempty_string(t.path) then return 'target.path: must be a non-empty string' end
    if t.path:sub(-1) == '/' or has_dotdot(t.path) or t.path:find('[%c]') then
        return 'target.path: must name a file, without ".." components or control characters'
    end
    if t.token == nil then return 'target.token: missing (a bearer token for createUploadSession)' end
    if not nonempty_string(t.token) or t.token:find('[%c]') then
        return 'target.token: must be a non-empty string'
    end
    return nil
end

local function check_graph_chunk(cs)
    if cs % GRAPH_FRAGMENT ~= 0 then
        return 'chunk_size: must be a multiple of 327680 (320 KiB) for graph'
    end
    if cs > GRAPH_MAX_CHUNK then
        return 'chunk_size: at most 62914560 (60 MiB) for graph'
    end
    return nil
end

local function check_strings(obj, where)
    if obj == nil then return nil end
    if not is_object(obj) then return where .. ': must be an object of strings' end
    for k, v in pairs(obj) do
        if type(v) ~= 'string' or v:find('[%c]') then
            return where .. '.' .. tostring(k) .. ': must be a string without control characters'
        end
    end
    return nil
end

-- Google resumable uploads (Drive v3, Cloud Storage JSON API): a session_url
-- the app initiated, or the fields for the worker to initiate one.
local function check_google(t, kind)
    local allowed = {type = true, session_url = true, token = true, api = true}
    if kind == 'gdrive' then
        allowed.name = true; allowed.parents = true; allowed.mime_type = true
    else
        allowed.bucket = true; allowed.name = true
    end
    local e = unknown_field(t, allowed, 'target')
    if e then return e end
    if t.api ~= nil and not is_http_url(t.api) then return 'target.api: must be an http(s) URL' end
    if t.session_url ~= nil then
        if not is_http_url(t.session_url) then return 'target.session_url: must be an http(s) URL' end
        return nil
    end
    if t.token == nil then return 'target: ' .. kind .. ' needs session_url, or token and the fields to initiate one' end
    if not nonempty_string(t.token) or t.token:find('[%c]') then return 'target.token: must be a non-empty string' end
    if not nonempty_string(t.name) then return 'target.name: missing (the file or object name)' end
    if kind == 'gdrive' then
        if t.parents ~= nil then
            if type(t.parents) ~= 'table' or is_object(t.parents) and next(t.parents) ~= nil then
                return 'target.parents: must be an array of folder ids'
            end
            for _, v in ipairs(t.parents) do
                if not nonempty_string(v) then return 'target.parents: must be an array of folder ids' end
            end
        end
        if t.mime_type ~= nil and not nonempty_string(t.mime_type) then
            return 'target.mime_type: must be a string'
        end
    elseif not nonempty_string(t.bucket) or t.bucket:find('[/%s]') then
        return 'target.bucket: missing or not a bucket name'
    end
    return nil
end

local GOOGLE_QUANTUM = 262144        -- Google: chunks are multiples of 256 KiB
local function check_google_chunk(cs)
    if cs % GOOGLE_QUANTUM ~= 0 then
        return 'chunk_size: must be a multiple of 262144 (256 KiB) for Google'
    end
    return nil
end

-- S3 multipart (and compatible stores). Credentials come from the worker's
-- environment, never from the spec.
local function check_s3(t)
    local e = unknown_field(t, {type = true, endpoint = true, region = true, bucket = true,
        key = true, path_style = true}, 'target')
    if e then return e end
    if t.endpoint ~= nil and not is_http_url(t.endpoint) then
        return 'target.endpoint: must be an http(s) URL'
    end
    if not nonempty_string(t.region) or t.region:find('[^%w-]') then
        return 'target.region: missing or not a region name (as "us-east-1")'
    end
    if not nonempty_string(t.bucket) or t.bucket:find('[^%w.-]') then
        return 'target.bucket: missing or not a bucket name'
    end
    if not nonempty_string(t.key) or t.key:find('[%c]') or #t.key > 1024 then
        return 'target.key: missing or not an object key (at most 1024 bytes, no control characters)'
    end
    if t.path_style ~= nil and type(t.path_style) ~= 'boolean' then
        return 'target.path_style: must be true or false'
    end
    return nil
end

local S3_MIN_PART = 5242880              -- S3: parts are at least 5 MiB (but the last)
local S3_MAX_PART = 5368709120           -- and at most 5 GiB
local function check_s3_chunk(cs)
    if cs < S3_MIN_PART then return 'chunk_size: at least 5242880 (5 MiB) for s3' end
    if cs > S3_MAX_PART then return 'chunk_size: at most 5368709120 (5 GiB) for s3' end
    return nil
end

-- Azure block blobs: blob_url carrying a SAS.
local function check_azure(t)
    local e = unknown_field(t, {type = true, blob_url = true}, 'target')
    if e then return e end
    if not is_http_url(t.blob_url) then return 'target.blob_url: missing or not an http(s) URL' end
    if not t.blob_url:find('?', 1, true) then
        return 'target.blob_url: must carry a SAS (a query string with sig=...)'
    end
    return nil
end

local AZURE_MAX_BLOCK = 4194304000       -- Azure: blocks of at most 4000 MiB
local function check_azure_chunk(cs)
    if cs > AZURE_MAX_BLOCK then return 'chunk_size: at most 4194304000 (4000 MiB) for azure' end
    return nil
end

-- tus 1.0: creation against endpoint, or an existing upload_url.
local function check_tus(t)
    local e = unknown_field(t, {type = true, endpoint = true, upload_url = true,
        headers = true, metadata = true}, 'target')
    if e then return e end
    if (t.endpoint == nil) == (t.upload_url == nil) then
        return 'target: tus needs exactly one of endpoint (to create an upload) and upload_url'
    end
    if t.endpoint ~= nil and not is_http_url(t.endpoint) then
        return 'target.endpoint: must be an http(s) URL'
    end
    if t.upload_url ~= nil and not is_http_url(t.upload_url) then
        return 'target.upload_url: must be an http(s) URL'
    end
    return check_strings(t.headers, 'target.headers') or check_strings(t.metadata, 'target.metadata')
end

local function no_chunk_rule() return nil end

-- One entry per target type: field check, chunk rules, default chunk size.
local EIGHT_MIB = 8388608
local TARGETS = {
    graph = {check = check_graph, check_chunk = check_graph_chunk,
             default_chunk = GRAPH_DEFAULT_CHUNK},
    gdrive = {check = function(t) return check_google(t, 'gdrive') end,
              check_chunk = check_google_chunk, default_chunk = EIGHT_MIB},
    gcs = {check = function(t) return check_google(t, 'gcs') end,
           check_chunk = check_google_chunk, default_chunk = EIGHT_MIB},
    s3 = {check = check_s3, check_chunk = check_s3_chunk, default_chunk = EIGHT_MIB},
    azure = {check = check_azure, check_chunk = check_azure_chunk, default_chunk = EIGHT_MIB},
    tus = {check = check_tus, check_chunk = no_chunk_rule, default_chunk = EIGHT_MIB},
}

local function supported_types()
    local names = {}
    for k, _ in pairs(TARGETS) do table.insert(names, k) end
    table.sort(names)
    return table.concat(names, ', ')
end

-- Returns the decoded spec and its driver, or nil and the message.
local function check_spec(raw)
    if type(raw) ~= 'string' or raw == '' then return nil, nil, 'spec: missing' end
    if #raw > MAX_SPEC_BYTES then
        return nil, nil, 'spec: larger than ' .. MAX_SPEC_BYTES .. ' bytes'
    end
    local ok, spec = pcall(cjson.decode, raw)
    if not ok then return nil, nil, 'spec: not valid JSON' end
    if type(spec) ~= 'table' or not is_object(spec) or next(spec) == nil and raw:match('^%s*%[') then
        return nil, nil, 'spec: must be a JSON object'
    end
    local e = unknown_field(spec, {id = true, source = true, target = true,
        chunk_size = true, meta = true}, 'spec')
    if e then return nil, nil, e end
    if spec.id ~= nil then
        if type(spec.id) ~= 'string' or #spec.id < 1 or #spec.id > 128 or
            spec.id:find('[^%w._-]') then
            return nil, nil, 'id: must be 1-128 characters of A-Z a-z 0-9 . _ -'
        end
    end
    local _, serr = check_source(spec.source)
    if serr then return nil, nil, serr end
    local t = spec.target
    if t == nil then return nil, nil, 'target: missing (an object with "type")' end
    if not is_object(t) or next(t) == nil then
        return nil, nil, 'target: must be an object with "type"'
    end
    if t.type == nil then return nil, nil, 'target.type: missing' end
    if type(t.type) ~= 'string' then return nil, nil, 'target.type: must be a string' end
    local driver = TARGETS[t.type]
    if not driver then
        return nil, nil, 'target.type: unknown type "' .. t.type .. '" (supported: ' ..
            supported_types() .. ')'
    end
    e = driver.check(t)
    if e then return nil, nil, e end
    if spec.chunk_size ~= nil then
        if not is_int(spec.chunk_size) or spec.chunk_size < 1 then
            return nil, nil, 'chunk_size: must be a positive integer (bytes)'
        end
        e = driver.check_chunk(spec.chunk_size)
        if e then return nil, nil, e end
    end
    if spec.meta ~= nil and not is_object(spec.meta) then
        return nil, nil, 'meta: must be a JSON object'
    end
    return spec, driver, nil
end

------------------------------------------------------------------ helpers

local function ack(p, msgid)
    if msgid and msgid ~= '' then
        redis.call('XACK', p .. ':chunks', GROUP, msgid)
        redis.call('XDEL', p .. ':chunks', msgid)
    end
end

-- Appends the job's current counters to the event stream, plus extra
-- field/value pairs.
local function event(p, id, extra)
    local jk = p .. ':job:' .. id
    local v = redis.call('HMGET', jk, 'state', 'bytes_done', 'size',
        'chunks_done', 'chunks')
    local f = {'XADD', p .. ':events', 'MAXLEN', '~', EVENTS_MAXLEN, '*',
        'job', id, 'state', v[1] or '', 'bytes_done', v[2] or '0',
        'size', v[3] or '', 'chunks_done', v[4] or '0', 'chunks', v[5] or ''}
    for _, x in ipairs(extra or {}) do table.insert(f, x) end
    redis.call(unpack(f))
end

local TERMINAL = {done = true, failed = true, cancelled = true}

-- Every state change goes through here, so p:states (jobs by state, for
-- cru stats and dashboards) stays exact.
local function set_state(p, jk, old, new)
    if old == new then return end
    redis.call('HSET', jk, 'state', new)
    if old then redis.call('HINCRBY', p .. ':states', old, -1) end
    redis.call('HINCRBY', p .. ':states', new, 1)
end

local function finish(p, jk, old, new, now, extra)
    set_state(p, jk, old, new)
    redis.call('HSET', jk, 'finished_ms', now, 'updated_ms', now, unpack(extra))
end

local function enqueue(p, fields)
    local f = {'XADD', p .. ':chunks', '*'}
    for _, x in ipairs(fields) do table.insert(f, x) end
    return redis.call(unpack(f))
end

-- Records a message in p:dead with its reason (newest DEAD_MAX kept).
local DEAD_MAX = 10000
local function dead_letter(p, msgid, id, chunk, reason, now)
    local entry = cjson.encode({msg = msgid, job = id, chunk = chunk,
        reason = reason, ms = now})
    redis.call('ZADD', p .. ':dead', now, entry)
    redis.call('ZREMRANGEBYRANK', p .. ':dead', 0, -(DEAD_MAX + 1))
end

-- Hands the calling worker slot its next message in the same round trip
-- that recorded the last one: reads one new entry for consumer (none when
-- consumer is empty) and the hash of the job it names. Returns
-- {msgid, {field, value, ...}, {job hash field, value, ...}} or nil.
local function fetch_next(p, consumer)
    if not consumer or consumer == '' then return nil end
    local r = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', 1,
        'STREAMS', p .. ':chunks', '>')
    local e = r and r[1] and r[1][2][1]
    if not e then return nil end
    local fields, job = e[2], nil
    for i = 1, #fields, 2 do
        if fields[i] == 'job' then job = fields[i + 1] end
    end
    local hash = {}
    if type(job) == 'string' and job ~= '' and #job <= 128 then
        hash = redis.call('HGETALL', p .. ':job:' .. job)
    end
    return {e[1], fields, hash}
end

-- Wraps an outcome with the next message for the caller, if any.
local function with_next(p, outcome, consumer)
    local n = fetch_next(p, consumer)
    if not n then return {outcome} end
    return {outcome, n[1], n[2], n[3]}
end

-- Parallel targets: enqueues the chunks from start on that are not done,
-- at most ENQUEUE_BATCH of them, and an {op=enqueue, start} message for the
-- rest, so a 10,000-chunk job never holds Redis for long.
local ENQUEUE_BATCH = 500
local function enqueue_batch(p, jk, id, start, chunks)
    local stop = math.min(chunks, start + ENQUEUE_BATCH)
    for n = start, stop - 1 do
        if redis.call('HEXISTS', jk .. ':parts', tostring(n)) == 0 then
            enqueue(p, {'job', id, 'chunk', tostring(n)})
        end
    end
    if stop < chunks then
        enqueue(p, {'job', id, 'op', 'enqueue', 'start', tostring(stop)})
    end
end

------------------------------------------------------------------ functions

-- FCALL cru_submit 0|1 [prefix] <spec json>  ->  job id
local function cru_submit(keys, args)
    local p = prefix_of(keys)
    local spec, driver, err = check_spec(args[1])
    if err then return invalid(err) end
    local id = spec.id
    if id == nil then
        local seq = redis.call('INCR', p .. ':seq')
        id = string.format('%x-%x', now_ms(), seq)
    end
    local jk = p .. ':job:' .. id
    if redis.call('EXISTS', jk) == 1 then return id end  -- idempotent

    local src = spec.source
    if type(src) == 'table' then src = src.url end
    local now = now_ms()
    local meta = ''
    if spec.meta ~= nil then meta = cjson.encode(spec.meta) end
    redis.call('HSET', jk,
        'id', id, 'spec', args[1],
        'target', spec.target.type, 'source', redact_url(src),
        'chunk_size', spec.chunk_size or driver.default_chunk,
        'size', '', 'chunks', '', 'chunks_done', 0, 'bytes_done', 0,
        'created_ms', now, 'updated_ms', now, 'finished_ms', '',
        'error', '', 'result', '', 'meta', meta, 'retries', 0)
    set_state(p, jk, nil, 'queued')
    redis.call('ZADD', p .. ':jobs', now, id)
    local sk = p .. ':chunks'
    if redis.call('EXISTS', sk) == 0 then
        redis.call('XGROUP', 'CREATE', sk, GROUP, '0', 'MKSTREAM')
    end
    enqueue(p, {'job', id, 'op', 'plan'})
    event(p, id)
    return id
end

-- FCALL cru_plan 1 prefix <id> <msgid> <size> <chunk_size> <chunks>
--       <session> <source_version> <result json or ""> [<consumer>
--       [<parallel "1"|""> [<note>]]]
-- Records the plan, acknowledges the plan message and enqueues chunk 0 (a
-- parallel target: every chunk, in batches of ENQUEUE_BATCH); a job with no
-- chunks (an empty file sent whole) finishes here with result. note, when
-- given, is kept on the job (e.g. why the chunk size was raised).
-- Returns {"ok"}, or {"skip"} when the job is gone, ended or already
-- planned; with consumer, followed by that consumer's next message
-- (fetch_next).
local function cru_plan(keys, args)
    local p = prefix_of(keys)
    local id, msgid = args[1], args[2]
    local jk = p .. ':job:' .. id
    local state = redis.call('HGET', jk, 'state')
    if not state or TERMINAL[state] or redis.call('HEXISTS', jk, 'planned_ms') == 1 then
        ack(p, msgid)
        if state == 'cancelled' and (args[6] or '') ~= '' then
            -- cancelled while the session was being opened: abort it too
            redis.call('HSET', jk, 'session', args[6])
            enqueue(p, {'job', id, 'op', 'abort'})
        end
        return with_next(p, 'skip', args[9])
    end
    local now = now_ms()
    local chunks = tonumber(args[5])
    local parallel = args[10] == '1'
    set_state(p, jk, state, 'running')
    redis.call('HSET', jk, 'size', args[3],
        'chunk_size', args[4], 'chunks', chunks, 'session', args[6] or '',
        'source_version', args[7] or '', 'planned_ms', now, 'updated_ms', now,
        'parallel', parallel and '1' or '', 'note', args[11] or '')
    ack(p, msgid)
    if chunks == 0 then
        finish(p, jk, 'running', 'done', now, {'result', args[8] or ''})
    elseif parallel then
        enqueue_batch(p, jk, id, 0, chunks)
    else
        enqueue(p, {'job', id, 'chunk', '0'})
    end
    event(p, id)
    return with_next(p, 'ok', args[9])
end

-- FCALL cru_chunk_done 1 prefix <id> <msgid> <chunk> <bytes> <result json or "">
--       <next_from or ""> [<consumer> [<part> [<rate>]]]
-- Marks the chunk done once (however often it is delivered), adds its
-- bytes, acknowledges the message, and enqueues the next chunk or, when a
-- result is given (the target completed the upload), stores it and sets
-- state=done. next_from, when set, is the first byte the target still
-- lacks if that is not the next chunk's start (a sequential target that
-- took bytes past the chunk); the next message carries it as "from".
-- A parallel job keeps each chunk's part (S3 ETag, Azure block id) in
-- p:job:<id>:parts, and the chunk that completes the set enqueues exactly
-- one {op=finalize} message (guarded by the job's finalize_queued field,
-- however the last chunks race or are redelivered).
-- Returns {"next"}, {"done"}, {"finalize"} or {"skip"}; with consumer, followed by that
-- consumer's next message (fetch_next), so a busy slot needs one round trip
-- per chunk.
local function cru_chunk_done(keys, args)
    local p = prefix_of(keys)
    local id, msgid, chunk, bytes = args[1], args[2], tonumber(args[3]), tonumber(args[4])
    local result, next_from = args[5] or '', args[6] or ''
    local jk = p .. ':job:' .. id
    local v = redis.call('HMGET', jk, 'state', 'chunks', 'size', 'parallel')
    local chunks = tonumber(v[2])
    if v[1] ~= 'running' or not chunks or not chunk or chunk < 0 or chunk >= chunks then
        ack(p, msgid)
        return with_next(p, 'skip', args[7])
    end
    local now = now_ms()
    local part = args[8] or ''
    if part == '' then part = 'done' end
    local first = redis.call('HSETNX', jk .. ':parts', tostring(chunk), part) == 1
    if first then
        redis.call('HINCRBY', jk, 'chunks_done', 1)
        redis.call('HINCRBY', jk, 'bytes_done', bytes)
    end
    redis.call('HSET', jk, 'updated_ms', now)
    ack(p, msgid)
    local outcome = 'skip'
    if result ~= '' then
        -- the target holds the whole file: every chunk is done (a resumed
        -- fragment may have carried the last chunks' bytes too)
        redis.call('HSET', jk, 'chunks_done', chunks, 'bytes_done', v[3])
        local covered = first and {chunk} or {}
        for n = chunk + 1, chunks - 1 do
            if redis.call('HSETNX', jk .. ':parts', tostring(n), 'done') == 1 then
                table.insert(covered, n)
            end
        end
        for _, n in ipairs(covered) do event(p, id, {'chunk', tostring(n), 'rate', args[9] or ''}) end
        finish(p, jk, 'running', 'done', now, {'result', result})
        event(p, id)
        return with_next(p, 'done', args[7])
    elseif v[4] == '1' then
        if tonumber(redis.call('HGET', jk, 'chunks_done')) >= chunks and
            redis.call('HSETNX', jk, 'finalize_queued', '1') == 1 then
            enqueue(p, {'job', id, 'op', 'finalize'})
            outcome = 'finalize'
        end
    elseif first and chunk + 1 < chunks then
        local f = {'job', id, 'chunk', tostring(chunk + 1)}
        if next_from ~= '' then table.insert(f, 'from'); table.insert(f, next_from) end
        enqueue(p, f)
        outcome = 'next'
    end
    if first then event(p, id, {'chunk', tostring(chunk), 'rate', args[9] or ''}) end
    return with_next(p, outcome, args[7])
end

-- FCALL cru_progress 1 prefix <id> <chunk> <bytes sent of it> <rate> [<msgid>]
-- A progress event while a chunk is in flight (workers send at most about
-- one a second per chunk): bytes_done counts the chunk's bytes sent so far
-- (capped at size); the job hash itself changes only when chunks finish.
-- Returns 1, or -1 when the job has ended (cancelled, failed): then the
-- message is acknowledged and the worker stops the transfer.
local function cru_progress(keys, args)
    local p = prefix_of(keys)
    local id = args[1]
    local v = redis.call('HMGET', p .. ':job:' .. id, 'state', 'bytes_done', 'size',
        'chunks_done', 'chunks')
    if v[1] ~= 'running' then
        if not v[1] or TERMINAL[v[1]] then
            ack(p, args[5])
            return -1
        end
        return 0
    end
    local size = tonumber(v[3]) or 0
    local bd = math.min(size, (tonumber(v[2]) or 0) + (tonumber(args[3]) or 0))
    redis.call('XADD', p .. ':events', 'MAXLEN', '~', EVENTS_MAXLEN, '*',
        'job', id, 'state', 'running', 'bytes_done', bd, 'size', v[3],
        'chunks_done', v[4], 'chunks', v[5], 'sending', args[2] or '', 'rate', args[4] or '')
    return 1
end

-- FCALL cru_enqueue 1 prefix <id> <msgid> <start> [<consumer>]
-- The next batch of a parallel job's chunks (see enqueue_batch).
local function cru_enqueue(keys, args)
    local p = prefix_of(keys)
    local id, msgid, start = args[1], args[2], tonumber(args[3])
    local jk = p .. ':job:' .. id
    local v = redis.call('HMGET', jk, 'state', 'chunks', 'parallel')
    ack(p, msgid)
    local chunks = tonumber(v[2])
    if v[1] ~= 'running' or v[3] ~= '1' or not chunks or not start then
        return with_next(p, 'skip', args[4])
    end
    enqueue_batch(p, jk, id, start, chunks)
    return with_next(p, 'ok', args[4])
end

-- FCALL cru_finalized 1 prefix <id> <msgid> <result json> [<consumer>]
-- A parallel job's finalize step committed the upload: done, with result.
local function cru_finalized(keys, args)
    local p = prefix_of(keys)
    local id, msgid = args[1], args[2]
    local jk = p .. ':job:' .. id
    local state = redis.call('HGET', jk, 'state')
    ack(p, msgid)
    if state ~= 'running' then return with_next(p, 'skip', args[4]) end
    finish(p, jk, state, 'done', now_ms(), {'result', args[3] or ''})
    event(p, id)
    return with_next(p, 'done', args[4])
end

-- FCALL cru_fail 1 prefix <id> <msgid> <error>
-- Fails the job (unless it already ended) and acknowledges the message.
local function cru_fail(keys, args)
    local p = prefix_of(keys)
    local id, msgid, err = args[1], args[2], args[3] or 'unknown error'
    ack(p, msgid)
    local jk = p .. ':job:' .. id
    local state = redis.call('HGET', jk, 'state')
    if not state or TERMINAL[state] then return 'skip' end
    finish(p, jk, state, 'failed', now_ms(), {'error', err})
    event(p, id, {'error', err})
    return 'ok'
end

-- FCALL cru_dead 1 prefix <msgid> <job id or ""> <chunk or ""> <reason>
-- Dead-letters a message that cannot be processed (garbage fields, unknown
-- job, chunk out of range, a job hash that cannot be parsed, a message that
-- kept killing workers): acknowledges it, records it in p:dead with the
-- reason, and fails its job when there is one.
local function cru_dead(keys, args)
    local p = prefix_of(keys)
    local msgid, id, chunk, reason = args[1], args[2] or '', args[3] or '', args[4] or 'bad message'
    local now = now_ms()
    ack(p, msgid)
    dead_letter(p, msgid, id, chunk, reason, now)
    if id == '' then return 'dead' end
    local jk = p .. ':job:' .. id
    local state = redis.call('HGET', jk, 'state')
    if not state or TERMINAL[state] then return 'dead' end
    finish(p, jk, state, 'failed', now, {'error', reason})
    event(p, id, {'error', reason})
    return 'failed'
end

-- FCALL cru_ack 1 prefix <msgid>: acknowledges a message that needs no
-- work (its job has ended).
local function cru_ack(keys, args)
    ack(prefix_of(keys), args[1])
    return 'ok'
end

-- FCALL cru_retry_later 1 prefix <id> <msgid> <kind> <value> <attempt>
--       <delay_ms> <error> [<from>]
-- Parks a message whose attempt failed transiently in p:delayed for
-- delay_ms (kind is "chunk" or "op"); cru_promote moves it back. The job
-- keeps running; its last_error and retries say what happened.
local function cru_retry_later(keys, args)
    local p = prefix_of(keys)
    local id, msgid, kind, value = args[1], args[2], args[3], args[4]
    local attempt, delay, err, from = tonumber(args[5]), tonumber(args[6]), args[7], args[8] or ''
    ack(p, msgid)
    local jk = p .. ':job:' .. id
    local state = redis.call('HGET', jk, 'state')
    if not state or TERMINAL[state] then return 'skip' end
    local m = {job = id, attempt = attempt}
    m[kind] = value
    if from ~= '' then m.from = from end
    redis.call('ZADD', p .. ':delayed', now_ms() + delay, cjson.encode(m))
    redis.call('HINCRBY', jk, 'retries', 1)
    redis.call('HSET', jk, 'last_error', err, 'updated_ms', now_ms())
    event(p, id, {'retry', tostring(attempt), 'error', err})
    return 'delayed'
end

-- FCALL cru_promote 1 prefix [<max>]: moves due messages from p:delayed
-- back to the stream (marked resume=1: ask the target before re-sending).
-- Returns how many moved.
local function cru_promote(keys, args)
    local p = prefix_of(keys)
    local due = redis.call('ZRANGEBYSCORE', p .. ':delayed', '-inf', now_ms(),
        'LIMIT', 0, tonumber(args[1]) or 100)
    for _, member in ipairs(due) do
        local ok, m = pcall(cjson.decode, member)
        if ok and type(m) == 'table' and type(m.job) == 'string' then
            local f = {'job', m.job, 'attempt', tostring(m.attempt or 0), 'resume', '1'}
            if m.chunk ~= nil then
                table.insert(f, 'chunk'); table.insert(f, tostring(m.chunk))
            else
                table.insert(f, 'op'); table.insert(f, tostring(m.op))
            end
            if m.from ~= nil then table.insert(f, 'from'); table.insert(f, tostring(m.from)) end
            enqueue(p, f)
        end
        redis.call('ZREM', p .. ':delayed', member)
    end
    return #due
end

-- FCALL cru_claim 1 prefix <consumer> <min_idle_ms> <max_deliveries> <cursor>
-- Takes over one message idle longer than min_idle_ms (its worker died or
-- lost its lease). A message delivered more than max_deliveries times is
-- dead-lettered and its job failed instead. Returns
-- {next_cursor, msgid, deliveries, field, value, ...}, {next_cursor} when
-- there is none, or {next_cursor, "", deliveries, reason} after a dead letter.
local function cru_claim(keys, args)
    local p = prefix_of(keys)
    local consumer, min_idle, max_deliveries = args[1], args[2], tonumber(args[3])
    local r = redis.call('XAUTOCLAIM', p .. ':chunks', GROUP, consumer, min_idle,
        args[4] or '0-0', 'COUNT', 1)
    local cursor, entries = r[1], r[2]
    local e = entries[1]
    if not e then return {cursor} end
    local msgid, fields = e[1], e[2]
    local pend = redis.call('XPENDING', p .. ':chunks', GROUP, msgid, msgid, 1)
    local deliveries = pend[1] and pend[1][4] or 1
    if deliveries > max_deliveries then
        local f = {}
        for i = 1, #fields, 2 do f[fields[i]] = fields[i + 1] end
        local what = f.chunk and ('chunk ' .. f.chunk) or ('op ' .. tostring(f.op))
        local reason = 'worker lost ' .. (deliveries - 1) .. ' times on ' .. what
        cru_dead(keys, {msgid, f.job or '', f.chunk or '', reason})
        return {cursor, '', deliveries, reason}
    end
    local out = {cursor, msgid, deliveries}
    for _, x in ipairs(fields) do table.insert(out, x) end
    return out
end

-- FCALL cru_renew 1 prefix <consumer> <msgid> [<idle_ms> [<job id>]]
-- Renews the lease on a message this consumer holds (resets its idle
-- time). With idle_ms, releases it instead: sets its idle time so another
-- worker may take it over at once. Returns 1; 0 when the message is no
-- longer this consumer's (another worker took it over: stop working on
-- it); -1 when its job has ended (cancelled, failed): the message is
-- acknowledged, and the worker stops the transfer.
local function cru_renew(keys, args)
    local p = prefix_of(keys)
    local consumer, msgid, idle, id = args[1], args[2], args[3], args[4]
    local pend = redis.call('XPENDING', p .. ':chunks', GROUP, msgid, msgid, 1)
    if not pend[1] or pend[1][2] ~= consumer then return 0 end
    if id and id ~= '' then
        local state = redis.call('HGET', p .. ':job:' .. id, 'state')
        if not state or TERMINAL[state] then
            ack(p, msgid)
            return -1
        end
    end
    if idle and idle ~= '' then
        redis.call('XCLAIM', p .. ':chunks', GROUP, consumer, 0, msgid, 'IDLE', idle, 'JUSTID')
    else
        redis.call('XCLAIM', p .. ':chunks', GROUP, consumer, 0, msgid, 'JUSTID')
    end
    return 1
end

-- FCALL cru_cancel 1 prefix <id>
-- Cancels a job that has not ended: no further chunks are sent, and when
-- the job has a target session a worker aborts it (op=abort message).
local function cru_cancel(keys, args)
    local p = prefix_of(keys)
    local id = args[1] or ''
    local jk = p .. ':job:' .. id
    local v = redis.call('HMGET', jk, 'state', 'session', 'spec')
    local state = v[1]
    if not state then return redis.error_reply('ERR no such job: ' .. id) end
    if TERMINAL[state] then
        return redis.error_reply('ERR job ' .. id .. ' has already ended (' .. state .. ')')
    end
    finish(p, jk, state, 'cancelled', now_ms(), {'error', 'cancelled'})
    event(p, id)
    -- a session to abort: the one the worker opened, or the app's upload_url
    local ok, spec = pcall(cjson.decode, v[3] or '')
    local app_url = ok and type(spec) == 'table' and type(spec.target) == 'table' and
        type(spec.target.upload_url) == 'string'
    if (v[2] and v[2] ~= '') or app_url then
        enqueue(p, {'job', id, 'op', 'abort'})
        return 'cancelled; a worker aborts its upload session'
    end
    if state == 'queued' then
        -- a plan may be in flight: cru_plan aborts the session it opened
        return 'cancelled'
    end
    return 'cancelled'
end

-- FCALL cru_retry 1 prefix <id>
-- Requeues a failed job from where it stopped: the first chunk not done
-- (the worker asks the target what it holds before sending), or the plan if
-- it never got that far. Returns "requeued".
local function cru_retry(keys, args)
    local p = prefix_of(keys)
    local id = args[1] or ''
    local jk = p .. ':job:' .. id
    local v = redis.call('HMGET', jk, 'state', 'chunks', 'planned_ms', 'parallel')
    local state = v[1]
    if not state then return redis.error_reply('ERR no such job: ' .. id) end
    if state ~= 'failed' then
        return redis.error_reply('ERR job ' .. id .. ' is ' .. state .. '; only failed jobs can be retried')
    end
    local now = now_ms()
    redis.call('HSET', jk, 'error', '', 'finished_ms', '', 'updated_ms', now)
    if not v[3] then
        set_state(p, jk, state, 'queued')
        enqueue(p, {'job', id, 'op', 'plan'})
    elseif v[4] == '1' then
        -- parallel: the chunks not done (in batches), or the finalize step
        set_state(p, jk, state, 'running')
        local chunks = tonumber(v[2])
        if tonumber(redis.call('HLEN', jk .. ':parts')) >= chunks then
            redis.call('HSET', jk, 'finalize_queued', '1')
            enqueue(p, {'job', id, 'op', 'finalize'})
        else
            redis.call('HDEL', jk, 'finalize_queued')
            enqueue_batch(p, jk, id, 0, chunks)
        end
    else
        set_state(p, jk, state, 'running')
        local chunks, n = tonumber(v[2]), 0
        while n < chunks and redis.call('HEXISTS', jk .. ':parts', tostring(n)) == 1 do
            n = n + 1
        end
        enqueue(p, {'job', id, 'chunk', tostring(n), 'resume', '1'})
    end
    event(p, id)
    return 'requeued'
end

-- FCALL cru_heartbeat 1 prefix <worker id> <json> | cru_heartbeat 1 prefix <worker id>
-- Records (or, without json, removes) a worker in p:workers.
local function cru_heartbeat(keys, args)
    local p = prefix_of(keys)
    if args[2] and args[2] ~= '' then
        redis.call('HSET', p .. ':workers', args[1], args[2])
    else
        redis.call('HDEL', p .. ':workers', args[1])
    end
    return 'ok'
end

-- FCALL_RO cru_status 1 prefix <id> -> JSON of the job's public fields
-- (numbers as numbers, result and meta as JSON, never spec or session), or
-- an error "no such job".
local STATUS_FIELDS = {'id', 'state', 'target', 'source', 'size', 'chunk_size', 'chunks',
    'chunks_done', 'bytes_done', 'created_ms', 'updated_ms', 'finished_ms', 'error',
    'result', 'meta', 'retries', 'last_error', 'note'}
local STATUS_NUMBERS = {size = true, chunk_size = true, chunks = true, chunks_done = true,
    bytes_done = true, created_ms = true, updated_ms = true, finished_ms = true, retries = true}
local function cru_status(keys, args)
    local p = prefix_of(keys)
    local id = args[1] or ''
    local v = redis.call('HMGET', p .. ':job:' .. id, unpack(STATUS_FIELDS))
    if not v[2] then return redis.error_reply('ERR no such job: ' .. id) end
    local out = {}
    for i, f in ipairs(STATUS_FIELDS) do
        local x = v[i]
        if x == false or x == '' then
            out[f] = cjson.null
        elseif STATUS_NUMBERS[f] then
            out[f] = tonumber(x)
        elseif f == 'result' or f == 'meta' then
            local ok, j = pcall(cjson.decode, x)
            out[f] = ok and j or x
        else
            out[f] = x
        end
    end
    return cjson.encode(out)
end

-- FCALL_RO cru_stats 1 prefix -> JSON: queue length, pending, delayed,
-- dead, jobs by state, workers (as their heartbeat JSON).
local function cru_stats(keys, args)
    local p = prefix_of(keys)
    local sk = p .. ':chunks'
    local pending = 0
    if redis.call('EXISTS', sk) == 1 then
        local ok, x = pcall(redis.call, 'XPENDING', sk, GROUP)
        if ok then pending = x[1] end
    end
    local states = {}
    local s = redis.call('HGETALL', p .. ':states')
    for i = 1, #s, 2 do states[s[i]] = tonumber(s[i + 1]) end
    local workers = {}
    local w = redis.call('HGETALL', p .. ':workers')
    for i = 1, #w, 2 do
        local ok, hb = pcall(cjson.decode, w[i + 1])
        if ok then hb.id = w[i]; table.insert(workers, hb) end
    end
    return cjson.encode({
        stream = redis.call('XLEN', sk), pending = pending,
        delayed = redis.call('ZCARD', p .. ':delayed'),
        dead = redis.call('ZCARD', p .. ':dead'),
        jobs = redis.call('ZCARD', p .. ':jobs'),
        states = states, workers = workers, now_ms = now_ms()})
end

redis.register_function('cru_submit', cru_submit)
redis.register_function('cru_plan', cru_plan)
redis.register_function('cru_chunk_done', cru_chunk_done)
redis.register_function('cru_fail', cru_fail)
redis.register_function('cru_dead', cru_dead)
redis.register_function('cru_enqueue', cru_enqueue)
redis.register_function('cru_progress', cru_progress)
redis.register_function('cru_finalized', cru_finalized)
redis.register_function('cru_ack', cru_ack)
redis.register_function('cru_retry_later', cru_retry_later)
redis.register_function('cru_promote', cru_promote)
redis.register_function('cru_claim', cru_claim)
redis.register_function('cru_renew', cru_renew)
redis.register_function('cru_cancel', cru_cancel)
redis.register_function('cru_retry', cru_retry)
redis.register_function('cru_heartbeat', cru_heartbeat)
redis.register_function{function_name = 'cru_stats', callback = cru_stats,
    flags = {'no-writes'}}
redis.register_function{function_name = 'cru_status', callback = cru_status,
    flags = {'no-writes'}}
