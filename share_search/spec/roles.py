"""Why a trial is in a study: the reference networks every search trains first, or the search.

The single-task networks are the baseline Δm compares against; hard sharing is the simplest
multi-task network. The space tags the trials it queues with these names, the trial record
stores them, the leaderboard reads them.
"""

ROLE_SINGLE_TASK = "single_task"  # the single-task networks: the Δm baseline
ROLE_HARD_SHARING = "hard_sharing"
ROLE_SEARCHED = "searched"  # sampled by the search (no ``role`` attribute)
