"""The parts of the promote stage (steps/promote.py runs them in order).

``report``      what happened, and the exit code that says so;
``candidates``  the run's signed plan and eval records, grouped per artifact (gate ``results``, ``content``);
``source``      the source revision and its commit time, read from git (gate ``source``);
``attempt``     the gates that read the GitOps tree (``thresholds``, ``order``, ``newer-source``) and the commits;
``baselines``   content records before the push, live pointers after it, and their repair.
"""
