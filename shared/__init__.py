"""smallfirst's library; the Functions app in functions/ is a thin layer over it. Never imports azure.functions.

    core/        tasks, prompts, confidence, tiers, run_tier (one tier call), policy (acceptance), cascade
    pipeline/    parsing inputs, blob names, storage, blob-driven processing (ingest)
    evaluation/  eval runs, metrics, the shared run analysis, reports, tuning
    cli/         the `smallfirst` command
    errors.py    every exception, in one tree
"""
