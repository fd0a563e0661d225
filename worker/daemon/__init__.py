"""The worker daemon (`rota worker`): register, long-poll claim, run,
heartbeat, ship logs, report; drain and deregister at a stop.

  claim_loop  the daemon's life: workdir, supervisor, register, the claim
              loop and its slots (`Daemon`)
  job         one claimed job, from its lease to its reported result (`JobRun`)
  job_setup   what a job starts with: its directory's files, its environment,
              a step's script file
  steps       a job's steps as the workflow language runs them: if:, the
              step's fields, continue-on-error, its outputs, the job's
  language    the step contexts and evaluating a step's fields and the
              job's declared outputs (server/expressions)
  shells      a step's `shell:` as the command that runs its script
  heartbeat   keeping a job's lease; a cancel comes back through it
  results     a job's result (or hand-back), retried until the server takes it
  shutdown    the drain of running jobs, and deregistration
  workdir     the locked --workdir, job directories, the sweep of a killed
              daemon's leftovers
  protocol    the worker protocol calls the daemon makes
  config      WorkerConfig (from the flags) and Timings
  stops       why a job is stopped, and a job that could not start
  runner      runs a job's scripts in process groups (a step, its timeout,
              stop, kill)
  logship     output into sequence-numbered log chunks, with back-pressure
  reports     step states and CPU/memory samples
  outputs     $ROTA_OUTPUT parsing and `${{ needs.* }}` in env: values
  supervisor  the process that kills a dead worker's jobs (worker/supervise.py)
  run_as      starting jobs as another user (--run-as)
"""
