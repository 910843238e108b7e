#!lua name=cru
--[[
cru.lua — the Redis function library `cru`: every state change of a job
that must be atomic. The web app, the CLI and the workers all call these,
so a job moves through one implementation whatever language submitted it.

Each function takes the key prefix as its one optional key:
  FCALL cru_submit 0 '<spec json>'          -- prefix "cru"
  FCALL cru_submit 1 myapp '<spec json>'    -- prefix "myapp"

Keys (prefix p):
  p:chunks        stream, group "workers": {job, chunk} or {job, op=plan}
  p:job:<id>      hash: the job (fields in README "Redis fields")
  p:job:<id>:parts hash: chunk index -> "done"
  p:jobs          sorted set: id by created_ms
  p:events        capped stream: state changes and progress
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
        return nil, 'source: http(s) sources are not supported yet; give a file path'
    else
        return nil, 'source: must be an absolute path or a file:// URL'
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

-- One entry per target type: field check, chunk rules, default chunk size.
local TARGETS = {
    graph = {check = check_graph, check_chunk = check_graph_chunk,
             default_chunk = GRAPH_DEFAULT_CHUNK},
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
        'id', id, 'spec', args[1], 'state', 'queued',
        'target', spec.target.type, 'source', redact_url(src),
        'chunk_size', spec.chunk_size or driver.default_chunk,
        'size', '', 'chunks', '', 'chunks_done', 0, 'bytes_done', 0,
        'created_ms', now, 'updated_ms', now, 'finished_ms', '',
        'error', '', 'result', '', 'meta', meta)
    redis.call('ZADD', p .. ':jobs', now, id)
    local sk = p .. ':chunks'
    if redis.call('EXISTS', sk) == 0 then
        redis.call('XGROUP', 'CREATE', sk, GROUP, '0', 'MKSTREAM')
    end
    redis.call('XADD', sk, '*', 'job', id, 'op', 'plan')
    event(p, id)
    return id
end

-- FCALL cru_plan 1 prefix <id> <msgid> <size> <chunk_size> <chunks>
--       <session> <source_version> [<result json>]
-- Records the plan, acknowledges the plan message and enqueues chunk 0; a
-- job with no chunks (an empty file sent whole) finishes here with result.
-- Returns "ok", or "skip" when the job is gone, ended or already planned.
local function cru_plan(keys, args)
    local p = prefix_of(keys)
    local id, msgid = args[1], args[2]
    local jk = p .. ':job:' .. id
    local state = redis.call('HGET', jk, 'state')
    if not state or TERMINAL[state] or redis.call('HEXISTS', jk, 'planned_ms') == 1 then
        ack(p, msgid)
        return 'skip'
    end
    local now = now_ms()
    local chunks = tonumber(args[5])
    redis.call('HSET', jk, 'state', 'running', 'size', args[3],
        'chunk_size', args[4], 'chunks', chunks, 'session', args[6] or '',
        'source_version', args[7] or '', 'planned_ms', now, 'updated_ms', now)
    ack(p, msgid)
    if chunks == 0 then
        redis.call('HSET', jk, 'state', 'done', 'result', args[8] or '',
            'finished_ms', now)
    else
        redis.call('XADD', p .. ':chunks', '*', 'job', id, 'chunk', '0')
    end
    event(p, id)
    return 'ok'
end

-- FCALL cru_chunk_done 1 prefix <id> <msgid> <chunk> <bytes> [<result json>]
-- Marks the chunk done once (however often it is delivered), adds its
-- bytes, acknowledges the message, and enqueues the next chunk or, after
-- the last one, stores the result and sets state=done.
-- Returns "next", "done" or "skip".
local function cru_chunk_done(keys, args)
    local p = prefix_of(keys)
    local id, msgid, chunk, bytes = args[1], args[2], tonumber(args[3]), tonumber(args[4])
    local jk = p .. ':job:' .. id
    local v = redis.call('HMGET', jk, 'state', 'chunks')
    local chunks = tonumber(v[2])
    if v[1] ~= 'running' or not chunks or not chunk or chunk < 0 or chunk >= chunks then
        ack(p, msgid)
        return 'skip'
    end
    local now = now_ms()
    local first = redis.call('HSETNX', jk .. ':parts', tostring(chunk), 'done') == 1
    if first then
        redis.call('HINCRBY', jk, 'chunks_done', 1)
        redis.call('HINCRBY', jk, 'bytes_done', bytes)
    end
    redis.call('HSET', jk, 'updated_ms', now)
    ack(p, msgid)
    local done = tonumber(redis.call('HGET', jk, 'chunks_done'))
    local outcome = 'skip'
    if done >= chunks then
        redis.call('HSET', jk, 'state', 'done', 'result', args[5] or '',
            'finished_ms', now)
        outcome = 'done'
    elseif first and chunk + 1 < chunks then
        redis.call('XADD', p .. ':chunks', '*', 'job', id, 'chunk', tostring(chunk + 1))
        outcome = 'next'
    end
    if first then event(p, id, {'chunk', tostring(chunk)}) end
    return outcome
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
    local now = now_ms()
    redis.call('HSET', jk, 'state', 'failed', 'error', err, 'finished_ms', now,
        'updated_ms', now)
    event(p, id, {'error', err})
    return 'ok'
end

-- FCALL cru_ack 1 prefix <msgid>: drops a message that names no job.
local function cru_ack(keys, args)
    ack(prefix_of(keys), args[1])
    return 'ok'
end

redis.register_function('cru_submit', cru_submit)
redis.register_function('cru_plan', cru_plan)
redis.register_function('cru_chunk_done', cru_chunk_done)
redis.register_function('cru_fail', cru_fail)
redis.register_function('cru_ack', cru_ack)
