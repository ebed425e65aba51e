"""smallfirst's library; the Functions app in functions/ is a thin layer over it. Never imports azure.functions.

Layers, lowest first; each imports only those below it (tests/test_layers.py checks it):

    errors.py    every exception, in one tree
    foundation/  records, tasks, text/atomic/model files, answers (are two answers the same), metrics, storage
    core/        config, backends, prompts, confidence, tiers, run_tier (one tier call), policy (routing), cascade
    learning/    embedders, classifier and line tagger, training, retrain, promotion; serving (what the trained
                 tier is handed, the one seam with core, named by the backend spec)
    pipeline/    parsing inputs, blob names, storage, answering, ingest, outputs, review, shadow pick, retraining
    evaluation/  eval runs (tier_eval), run analysis, the simulated cascade, reports, tuning
    monitoring/  shadow worker, stats, dashboard, smoke check
    cli/         the `smallfirst` command
"""
