"""How large a workflow document, and each of its fields, may be; and what
a running job may keep through the in-job SDK.

Stated once here: server/definitions enforces them while reading a document,
so every breach comes back as a named problem before anything is encoded or
stored, and models.py can give the same numbers to msgspec.
"""

from __future__ import annotations

# Each job is a few Redis keys and a node in every graph walk; real workflows
# have tens of jobs.
MAX_JOBS = 1000

# libyaml's composer recurses without a depth check and crashes the process on
# deeply nested input; real workflows are a few levels deep.
MAX_YAML_DEPTH = 64
# Any YAML loader spends seconds per million values. Counted with aliases
# expanded: `*a` costs what its anchor holds, not one value.
MAX_YAML_VALUES = 200_000
# Scalar text of a whole document, aliases expanded. Equal to the server's
# default body limit (MAX_BODY_BYTES): aliases must never let a document grow
# past what a plain document could be.
MAX_EXPANDED_CHARS = 8 * 1024 * 1024

# Workflow, job and step names are display text, shown in lists and logs.
MAX_NAME_CHARS = 256
# A job's run/command and each step's run. bash gets the script as one
# argument, and Linux refuses an argument or environment string over 128 KiB
# (MAX_ARG_STRLEN). Counted in characters, as msgspec counts: 65,536 of them
# fit in 128 KiB of UTF-8 while each takes at most two bytes.
MAX_SCRIPT_CHARS = 65_536
# A steps job's command is its runs joined by newlines; each step runs on its
# own, so four full-size steps fit, and the stored job stays bounded.
MAX_STEPS_CHARS = 262_144
# Each env value is one environment string of the job's process (as above).
MAX_ENV_VALUE_CHARS = 65_536
# Entries per job: real jobs set a handful. With the per-value bound this caps
# what one job stores; the kernel's total for arguments plus environment
# (ARG_MAX, often 2 MiB) is lower still and is the worker's to report.
MAX_ENV_ENTRIES = 256
MAX_ENV_NAME_CHARS = 256
# All of a job's env (each `NAME=value` and its terminator): the worker adds
# its own environment, and Linux allows arguments plus environment together
# only ARG_MAX (often 2 MiB), so a job's own share stays well below.
MAX_ENV_TOTAL_CHARS = 262_144
# Labels per job: a job's label set is a ready-queue key, and every claim
# and enqueue compares label sets.
MAX_LABELS = 32
# `on:` / `trigger`: a few event names, joined with commas.
MAX_TRIGGER_CHARS = 1024
# `on: schedule:` entries per workflow (each a cron expression the
# scheduler computes every tick of).
MAX_SCHEDULES = 20
# After downtime a schedule with `catch-up: all` starts at most this many
# runs, the newest missed ticks; older ones are skipped.
MAX_CATCH_UP_RUNS = 50
# With `catch-up: none`, a tick the scheduler sees later than this is
# counted missed, not fired: a scheduler pass is due every
# SCHEDULE_INTERVAL_SECS, so an on-time tick is seen well within it.
SCHEDULE_ON_TIME_SECS = 60

# ---- a run's inputs -------------------------------------------------------------------
# `workflow_dispatch: inputs:` declared, and inputs given at start (GitHub
# allows 25 declared; rota takes as many as a run may carry).
MAX_INPUTS = 100
MAX_INPUT_DESCRIPTION_CHARS = 1024
MAX_INPUT_OPTIONS = 256
# One input as text (a list or object as its JSON): it becomes one
# environment string of every job (see MAX_ENV_VALUE_CHARS).
MAX_INPUT_CHARS = 65_536
# All of a run's inputs as JSON: every claim of its jobs hands them over.
MAX_INPUTS_BYTES = 1024 * 1024
# Levels of lists and objects in one input value (Strait's payloads and
# Restep's input_params are JSON documents).
MAX_INPUT_DEPTH = 32

# ---- when a run starts ----------------------------------------------------------------
# `scheduled_at` / `delay` at start or reschedule: at most this far ahead.
MAX_SCHEDULE_AHEAD_SECS = 366 * 86_400

# ---- what a running job may keep (the in-job SDK) ------------------------------------
# Each is checked on the encoded JSON before anything is stored.

# A checkpoint: enough for a cursor, a manifest or a model's step state; bulk
# data belongs in an artifact store, with its address in the checkpoint.
MAX_CHECKPOINT_BYTES = 1024 * 1024
# Run state: a shared scratchpad, not a database.
MAX_STATE_VALUE_BYTES = 64 * 1024
MAX_STATE_KEYS = 1000
# key: value annotations on a job (shown in status), and Markdown notes on
# a run (one per context).
MAX_ANNOTATIONS = 100
MAX_ANNOTATION_VALUE_CHARS = 1024
MAX_NOTES = 100
# A structured log entry's `log_data`, a step's result/artifacts/metadata,
# a progress update's metadata, a resource sample's extras, a typed event
# (usage, tool_call, stream): small structured facts.
MAX_REPORT_BYTES = 64 * 1024
# The payload an event (or an approval) hands to the jobs it wakes.
MAX_EVENT_PAYLOAD_BYTES = 256 * 1024
# Every checkpoint a job saves is kept (Strait lists them all), the oldest
# dropped past either bound; the latest of each attempt is kept apart for
# the next attempt's claim whatever these drop.
MAX_CHECKPOINTS_KEPT = 100
MAX_CHECKPOINT_HISTORY_BYTES = 4 * 1024 * 1024
# A run's metadata: the keys its jobs' annotations set, all jobs together.
MAX_RUN_METADATA_KEYS = 1000
# Structured outputs (Strait's): JSON values by key, each with its optional
# schema, per run.
MAX_STRUCTURED_OUTPUTS = 100
MAX_STRUCTURED_OUTPUT_BYTES = 256 * 1024

# ---- the worker protocol ------------------------------------------------------------

# A job its worker hands back (a graceful stop reached its drain timeout)
# runs again without spending an attempt, this many times at most until the
# job is retried by hand: past it a hand-back counts as a failed attempt, so
# a job that keeps stopping its workers, or a fleet that keeps restarting,
# cannot keep a job queued forever.
MAX_HANDBACKS = 10
# The reason a worker gives for handing a job back: shown in the job's
# events and attempts.
MAX_HANDBACK_REASON_CHARS = 1024

# The batch forms (POST /api/jobs/claims, /api/jobs/results, /api/jobs/heartbeats
# and a result's `next` claim) run as one script each, which holds Redis
# while it runs: each bounds how much one request may make that script do.
# A claim of several jobs: each job is one claim script's work (some 30
# Redis commands), so 100 hold Redis for a few milliseconds at most.
MAX_CLAIM_JOBS = 100
# Results in one request: each is one complete or fail script's work, and
# its outputs are bounded by MAX_OUTPUT_BYTES (the request by MAX_BODY_BYTES).
MAX_RESULTS_PER_REQUEST = 100
# Leases one heartbeat renews: a heartbeat is a few commands per lease; a
# worker running more jobs than this sends several.
MAX_HEARTBEAT_LEASES = 1000
# A lease id in a batch body (rota's are 36-character UUIDs).
MAX_LEASE_ID_CHARS = 128

# ---- what a running job may start (spawn) ---------------------------------------------
# Each is checked in the start script, atomically with the start, so
# concurrent spawns cannot pass a limit together. A run started otherwise
# (by a person, CI, a trigger) has depth 0; its child runs depth 1, theirs 2.

# Child runs one run's jobs may start, all attempts together (Buildkite-style
# trigger fan-out is tens, not hundreds).
MAX_CHILD_RUNS = 40
# Levels of child runs below a run nobody spawned (GitHub Actions allows
# four levels of reusable workflows).
MAX_RUN_DEPTH = 4
# Runs descending from one root run, all levels together: depth and fan-out
# alone would still let a self-spawning workflow reach 40^4 runs.
MAX_RUN_TREE = 1000
# Workflow ids in one job's `spawn: {workflows: [...]}` allow-list.
MAX_SPAWN_WORKFLOWS = 64
# Runs in one lineage of continuations (Strait's `continue`): a run and the
# runs continuing it, one after another. Each run continues at most once.
MAX_LINEAGE_RUNS = 100

# ---- run control: concurrency groups and pauses -------------------------------------

# `concurrency.group` as written, and as rendered when a run starts: the
# rendered name is part of Redis key names and shown in every listing.
MAX_GROUP_TEMPLATE_CHARS = 1024
MAX_GROUP_CHARS = 256
# `limit: N`: members of one group running at once (Buildkite's); or with
# `limit: N per D`, members let in within any window D long, D from a
# second to a day.
MAX_GROUP_LIMIT = 1000
MAX_RATE_WINDOW_SECS = 86_400
# `queue: max`: members waiting in one group, GitHub's bound; past it a new
# member is cancelled, as GitHub cancels it. server/lua/_control.lua holds
# the same number (a test holds them together).
MAX_GROUP_PENDING = 100
# New runs a paused workflow (new runs queued) holds; past it a new run is
# refused (409), since resuming lets them all go in one script.
MAX_HELD_RUNS = 1000
# A label resumed wakes one parked claim per job queued behind it, at most
# this many: each claim that takes one goes on claiming anyway.
MAX_RESUME_WAKES = 256

# ---- queries and the seeds' executors ------------------------------------------------

# A time in a query (`created_after`, `created_before`) is epoch milliseconds,
# up to the last millisecond of the year 9999: far past any real timestamp,
# well inside what JSON clients and Lua's doubles hold exactly (2^53).
MAX_EPOCH_MS = 253_402_300_799_999

# Restep's executors (seed 000) heartbeat every 30-60 s, and Restep times an
# execution out after 5 minutes without one: a heartbeat through its path
# holds the lease this long, or the lease's own TTL if that is longer.
RESTEP_LEASE_SECS = 300

# ---- the front door (server/connections.py) ------------------------------------------
# Before any token is checked, so they bound what anyone who can reach the
# port can make the server hold.

# A request's line and headers together. Browsers and proxies send a few KiB;
# nginx's default tops out at 4 x 8 KiB, Node's at 16 KiB.
MAX_HEADER_BYTES = 64 * 1024
# Headers per request (Apache's LimitRequestFields).
MAX_HEADERS = 100
# After an answer sent before the request's body was read (401, 413, 415,
# 431, ...), what the client still sends is read and dropped for up to this
# long before the close: closing with unread data makes the kernel send a
# reset, which can destroy the answer before the client reads it.
LINGER_SECS = 5.0

# ---- job logs: writing and reading ---------------------------------------------------
# (LOG_MAX_BYTES per attempt and LOG_MAX_CHUNK_BYTES per chunk are settings.)

# Chunks (or a job's own log entries) in one request: each is one XADD in the
# script, which holds Redis while it runs (one request of 70,000 tiny chunks
# held it for 1.4 s). rota's worker sends at most 500.
MAX_LOG_CHUNKS_PER_REQUEST = 1000
# A page of a log's history (GET .../logs): at most this many bytes of chunks
# (as stored), and at most this many chunks; at least one chunk whatever its size.
LOG_PAGE_BYTES = 1024 * 1024
LOG_PAGE_CHUNKS = 1000
# What a log or event stream reads from Redis at a time, and so holds per
# client while that client is slow to take it.
SSE_BATCH_BYTES = 256 * 1024
SSE_BATCH_ENTRIES = 500
# A page is read inside one script in steps; each step holds at most this
# many bytes of entries (step count = this / the largest entry) in Redis's
# Lua memory, whatever the page's own bounds.
STREAM_SCAN_BYTES = 4 * 1024 * 1024

# ---- the dashboard ---------------------------------------------------------------------

# How long a stream ticket opens its event stream: long enough for a page to
# open the stream and for EventSource's own reconnects with the same URL,
# short enough that one copied out of a history or a proxy log is stale.
STREAM_TICKET_SECS = 60
# Label sets GET /api/queues lists at most (each is a ready queue; a token
# inventing label sets must not make one listing unbounded work).
MAX_QUEUES_LISTED = 1000

# ---- the workflow language (expressions, conditions, matrices) ------------------------

# Characters inside `${{ }}` in one document, all fields together, each
# expression counting at least EXPRESSION_CHARS_FLOOR: parsing and checking
# costs about a microsecond a character and some tens per expression, so a
# document's checks stay well under a second. (An expression alone may be
# 21,000 characters: server/expressions/limits.py.)
MAX_DOCUMENT_EXPRESSION_CHARS = 262_144
EXPRESSION_CHARS_FLOOR = 32
# A matrix job's combinations, as GitHub allows; a vector product beyond
# MAX_MATRIX_PRODUCT is refused before `exclude` is applied to it, so
# expansion work is bounded whatever excludes would remove.
MAX_MATRIX_COMBINATIONS = 256
MAX_MATRIX_PRODUCT = 65_536
# One combination's values, as JSON: they are stored with the combination
# and handed to its worker with every claim.
MAX_COMBINATION_CHARS = 65_536
# A job's declared outputs (`outputs:`), and each one's template.
MAX_OUTPUT_DECLARATIONS = 256
MAX_OUTPUT_DECLARATION_CHARS = 65_536
# A step id, a working-directory and a custom shell.
MAX_STEP_ID_CHARS = 100
MAX_PATH_CHARS = 4096
# A job decided (its if:, matrix and expressions evaluated) waits in
# `deciding` for the process that settled its last need; one still there
# after this long (that process died) is decided by the reaper.
DECIDE_GRACE_MS = 5_000
# What one matrix expansion stores: every combination's rendered fields
# (env included) and values together, as JSON.
MAX_EXPANSION_BYTES = 16 * 1024 * 1024
