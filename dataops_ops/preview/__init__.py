"""Pull-request previews: which assets a change of the definitions touches, against prod's.

``state`` writes the definitions state of one environment (code versions, dependencies, partitions, the suites'
data rules and checks); a deploy records it in the release's folder. ``changes`` compares two states: the changed
set, and how to show it in a pull request.
"""

# Written into each release's folder by a deploy (``dataops_ops.deploy.deploy``).
STATE_FILE = "definitions-state.json"
# Previews open at once unless `preview up --max-previews` says otherwise.
DEFAULT_MAX_PREVIEWS = 3
