-- wrk script for the rollout rehearsal: GET / on every keep-alive connection, recording
-- for every answer its status, the instance that served it (from the page) and the
-- X-Visit-Number header. When the run ends, done() writes everything to $WRK_RECORD.
--
-- Stopping without losing count: wrk abandons in-flight requests when it stops, and an
-- abandoned GET / may still have counted a visit. So once the file $WRK_STOP_FILE exists,
-- every connection sends GET /healthz (which never counts) instead, and wrk is stopped a
-- moment later, when no GET / is in flight any more. From the wind-down on, each thread also
-- appends its answers to $WRK_RECORD.live.<thread> as they arrive, so the rehearsal can see
-- the answer of the last counted visit arrive before it stops wrk.

local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("id", #threads)
end

function init(args)
    answers = {}
    written = 0
    live_path = os.getenv("WRK_RECORD") .. ".live." .. id
    stop_file = os.getenv("WRK_STOP_FILE")
    page = wrk.format("GET", "/")
    health = wrk.format("GET", "/healthz")
    winding_down = false
end

function request()
    if not winding_down then
        local f = io.open(stop_file, "r")
        if f then
            f:close()
            winding_down = true
            write_live()
        end
    end
    if winding_down then
        return health
    end
    return page
end

-- One line per answer: "<status> <instance or -> <visit number or ->". The GET /healthz
-- answers of the wind-down are left out; a failed one is still recorded.
function response(status, headers, body)
    local visit = headers["x-visit-number"] or headers["X-Visit-Number"] or "-"
    if winding_down and status == 200 and visit == "-" then
        return
    end
    -- The page names the pod that served it in <strong id="pod">NAME</strong>.
    local instance = body:match('<strong id="pod">([^<]*)</strong>') or "-"
    answers[#answers + 1] = status .. " " .. instance .. " " .. visit
    if winding_down then
        write_live()
    end
end

-- Appends the answers not yet in this thread's live record.
function write_live()
    local out = assert(io.open(live_path, "a"))
    for i = written + 1, #answers do
        out:write(answers[i], "\n")
    end
    out:close()
    written = #answers
end

function done(summary, latency, requests)
    local out = assert(io.open(os.getenv("WRK_RECORD"), "w"))
    local e = summary.errors
    out:write(string.format("errors connect=%d read=%d write=%d timeout=%d\n",
        e.connect, e.read, e.write, e.timeout))
    for _, thread in ipairs(threads) do
        for _, line in ipairs(thread:get("answers")) do
            out:write(line, "\n")
        end
    end
    out:close()
end
