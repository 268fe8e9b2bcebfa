"""Worker-side: the functions that carry out queued runs, one module per kind of run.

They load models and import torch, so only training.tasks, the `execute_run` command and `--sync`
commands reach them, through `training.services.executor_of` (`evaluate_policy` imports
`evaluation` itself: it evaluates in the caller's process). The web process never imports them.
"""
