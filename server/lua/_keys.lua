--- @include "base"
-- The key layout. A workflow is a definition; each start of it is a run.
--
--   wf:<wf>            hash: id name trigger ver kind created updated runs
--                      last (latest run id) active (runs not finished) deleting
--                      otok (a one-off's creating token: see _quota.lua)
--                      nsched (its schedules, see _schedules.lua)
--                      paused (queue|skip) paused_ms
--   wfs                zset: workflow ids by creation sequence
--   named:<name>       zset: the one-off workflows of that name, by creation
--                      sequence (to find one by its name)
--   def:<wf>:<ver>     hash, immutable per version: name trigger jobs inputs
--                      (the declared ones, JSON), wenv (the workflow's env,
--                      when it holds expressions) rname (its run-name), refs
--                      (runs and the workflow using it), cc ('1': it has
--                      concurrency groups) wcc (its workflow-level
--                      concurrency, JSON; both left out without), and per
--                      job one field j:<job>, four lines: its static
--                      description (lk \t pr \t mr \t bk \t b1 \t b2 \t
--                      gate \t gate secs \t flags), needs, dependents, and
--                      its spec (JSON without the fields at their defaults;
--                      a job's `concurrency:` is in it). One field, not
--                      four: a hash's every field costs some 50 bytes of its
--                      own.
--   doc:<wf>:<ver>     string: the document as submitted
--   run:<run>          hash: id wf ver num by seq created state
--                      (delayed|active|done) cancelled expired started
--                      started_ms finished_ms ret inputs (JSON values) tags
--                      jobs name ratt (its attempt) cofail (failed
--                      continue-on-error jobs), and n:<st> counters of its
--                      jobs' states;
--                      parent depth root (a child run's), tree (a root's:
--                      runs under it), spawned, hnotes (flags); sat (when it
--                      was to start) released (when a delayed run started)
--                      exp (expires_at) sched (the schedule whose tick
--                      started it) rfrom (the run it restarts) bver ovr (the
--                      version its overrides were applied to, and them);
--                      run control (_control.lua): cg (its group spec),
--                      ckey (the concurrency_key it was started with),
--                      jg:<job> (a job's), wait (workflow|group), paused,
--                      paused_ms (each left out while unset)
--   delayedruns        zset: delayed runs by their scheduled time
--   expiring           zset: runs with an expires_at, by it
--   runs, wfruns:<wf>  zsets: run ids by a global run sequence
--   rj:<run>:<job>     hash: the job in that run (small fields only, so it
--                      stays a listpack; a field at its default is left out,
--                      see JOB_DEFAULTS): st att base rem lease worker enq
--                      dly start end out err lk pr mr bk b1 b2 needs deps
--                      gate gsecs; the workflow language's fl up cf coe dec
--                      tpl agg hold combos crem held mp ff cfail ccan omax
--                      (see _jobs.lua; `hold` is '1' for a combination
--                      beyond max-parallel, 'run' or 'group' for a job run
--                      control holds); cg (its concurrency group place:
--                      o|p|h, see _control.lua; '' in none, left out);
--                      and what the in-job SDK reports: prog
--                      sname sidx pmeta res resat pcpu pmem rdata etype
--                      estack lout ckat evkey evuntil evpayload hsteps hann
--                      eseq (the job's SDK log entries so far); the log
--                      budget: lba lbb lbx (see _logbudget.lua)
--   att:<run>:<job>    hash: attempt number -> attempt JSON (once it ended)
--   logs:<run>:<job>   stream: c (chunk JSON) a (attempt)
--   ev:<run>           stream: e (event JSON)
--   dead               zset: <run>:<job> failed for good, by a sequence
--   steps:<run>:<job>  hash: <attempt>:<step>:<prop> -> value (the job's steps)
--   ann:<run>:<job>    hash: annotation key -> value
--   ckpt:<run>:<job>   hash: attempt -> checkpoint record JSON
--   state:<run>        hash: the run's state, key -> value JSON
--   notes:<run>        hash: context -> Markdown note JSON
--   rdef:<run>         hash: s:<job> spec, b:<job> spawner, of spawned jobs
--   jdec:<run>         hash: job -> its decided fields (JSON: name labels env
--                      timeout, a matrix combination's values)
--   deciding           zset: <run>:<job> waiting for the server to decide
--                      it, by when (the reaper decides those left too long)
--   children:<run>     zset: child run ids by run sequence
--   evwait:<key>       set: <run>:<job> waiting for that event
--   evtimeouts         zset: <run>:<job> -> when its wait times out
--   finished           zset: run -> purge time; oneoffs: wf -> purge time
--   idem:<key>         string: what an Idempotency-Key's request made (_quota.lua)
--   layout             string: how far upgrade.lua has brought older data
--   m:n m:f m:p        hashes: the fleet's metrics (see metrics_flush.lua)
-- Channels: j:<run>:<job> (a job's log or state), r:<run> (a run's events),
-- wake (ready jobs, see _ready.lua), tokens (revocations).

local function wkey(wf) return P .. 'wf:' .. wf end
local function dkey(wf, ver) return P .. 'def:' .. wf .. ':' .. ver end
local function rkey(run) return P .. 'run:' .. run end
local function jkey(run, job) return P .. 'rj:' .. run .. ':' .. job end
local function akey(run, job) return P .. 'att:' .. run .. ':' .. job end
local function lkey(lid) return P .. 'lease:' .. lid end
local function logkey(run, job) return P .. 'logs:' .. run .. ':' .. job end
local function evkey(run) return P .. 'ev:' .. run end
local function jobchan(run, job) return P .. 'j:' .. run .. ':' .. job end
local function runchan(run) return P .. 'r:' .. run end
-- A job record (rj:) leaves out a field while it holds its default here,
-- so a queued job is a small hash: every read goes through jget/jmget,
-- which give the default for a field left out (and false, as HGET does,
-- for any other field missing, `st` included: no such job).
local JOB_DEFAULTS = { att = '0', base = '0', rem = '0', lease = '', worker = '', enq = '0', dly = '0',
  start = '', ['end'] = '', out = '', err = '', lk = '', pr = '0', mr = '0', bk = 'none', b1 = '0', b2 = '0',
  gate = '', gsecs = '', fl = '', up = '', needs = '', deps = '', cg = '' }

local function jmget(k, ...)
  local fields = { ... }
  local values = redis.call('HMGET', k, ...)
  for i, f in ipairs(fields) do
    if not values[i] then values[i] = JOB_DEFAULTS[f] or false end
  end
  return values
end

local function jget(k, f)
  local v = redis.call('HGET', k, f)
  if v then return v end
  return JOB_DEFAULTS[f] or false
end

-- Writes fields of a job record, leaving out (deleting, unless `fresh`:
-- a record just made has none) those at their default: what a queued
-- job's record holds is written through here.
local function jwrite(k, fresh, args)
  local set, drop = {}, {}
  for i = 1, #args, 2 do
    local f, v = args[i], tostring(args[i + 1])
    if JOB_DEFAULTS[f] == v then drop[#drop + 1] = f else set[#set + 1] = f; set[#set + 1] = v end
  end
  if #set > 0 then redis.call('HSET', k, unpack(set)) end
  if #drop > 0 and not fresh then redis.call('HDEL', k, unpack(drop)) end
end

local function jset(k, ...) jwrite(k, false, { ... }) end
local function jnew(k, ...) jwrite(k, true, { ... }) end

-- A job of a definition version: static description, needs, dependents,
-- spec; nil when the version has no such job.
local function def_job(d, job)
  local rec = redis.call('HGET', d, 'j:' .. job)
  if not rec then return nil end
  return string.match(rec, '^([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)$')
end

local function def_spec(d, job)
  local rec = redis.call('HGET', d, 'j:' .. job)
  return rec and string.match(rec, '^[^\n]*\n[^\n]*\n[^\n]*\n(.*)$')
end

-- Queue members name a job of a run; neither ids may hold ':'.
local function member(run, job) return run .. ':' .. job end
local function parse_member(m) return string.match(m, '^([^:]+):(.+)$') end
