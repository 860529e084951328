"""Studies: each plans jobs, runs them through an executor, and applies the measures.

One module per study kind (``rotelab.studies.diagnose`` etc.); the public functions are
``rotelab.diagnose``, ``rotelab.compare``, ``rotelab.sweep``, ``rotelab.memorization`` and
``rotelab.adapt``.
"""

#: study kind -> (module, public function, result class), in the order a reader asks the questions
KINDS = {
    "diagnose": ("rotelab.studies.diagnose", "diagnose", "DiagnoseResult"),
    "compare": ("rotelab.studies.compare", "compare", "CompareResult"),
    "sweep": ("rotelab.studies.sweep", "sweep", "SweepResult"),
    "memorization": ("rotelab.studies.memorization", "memorization", "MemorizationResult"),
    "adapt": ("rotelab.studies.adapt", "adapt", "AdaptResult"),
}
