"""What the staff pages, the API and `project_report` show, as plain values built from the rows with
a fixed number of queries:

- `metrics`: every figure of a project (agreement, reward-model accuracy, win rates) in one dict;
  the dashboard, `GET /api/metrics/` and `project_report` read it.
- `charts`: the dashboard's charts, drawn from those figures.
- `home`: the project home (versions, the next round, what each worker does, the launch buttons).
- `outcome`: what a finished run came out with, for the top of its page.
"""
