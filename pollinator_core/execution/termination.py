"""How a job ended: one record for every runtime, shown the same way everywhere.

PLACEHOLDER
"""

TAIL_MARK = " lines of output:\n"
