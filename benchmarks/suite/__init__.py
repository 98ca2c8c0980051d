"""``edgewise bench all``: one benchmark suite over the three applications, with regressions.

See ``cli`` for the command, ``collect`` for what each application measures, ``compare`` for
what counts as a regression and ``rows`` for the result's typed contract.
"""

from .cli import run_suite, suite_main
from .compare import Finding, Tolerance, compare
from .rows import SCHEMA, SuiteResult, SuiteRow

__all__ = ["suite_main", "run_suite", "compare", "Tolerance", "Finding", "SuiteRow", "SuiteResult", "SCHEMA"]
