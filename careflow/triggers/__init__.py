"""Follow-up trigger rules: pure functions from a plan's state and an injected ``now`` to actions.

No SQLAlchemy, FastAPI or Prefect here (``careflow.engine`` loads the data and applies the actions).

* ``sweep.sweep_plan(program, careplan, tasks, ctx, now) -> list[Action]`` - calendar rules
  (``schedule``: recurrence, later starts, dependencies; ``overdue``: overdue and escalation;
  ``plan_status``: activity references, completion, attention flag);
* ``task_events.task_event_actions(program, careplan, tasks, task, ctx, now) -> list[Action]`` - a Task
  completed (dependants, ``completed`` triggers) or rejected (``rejected`` triggers, reassignment);
* ``observations.observation_actions(observation, earlier, plans, ctx, now) -> list[Action]`` -
  threshold and change rules on a new Observation;
* ``actions``: ``CreateTask``, ``UpdateTask``, ``UpdatePlan``.
"""
