"""HKT: Hereditary Knowledge Transfer (arXiv 2508.09743) as a library.

    genetic_attention        eq. (2)
    Transfer, Mixture, ETM   the Extraction-Transfer-Mixture triad, eq. (3)
    Inheritance, build_inheritance
                             Algorithm 1 for any aligned parent/child block lists
    loss_weights             the constraints on eq. (9)

Names load on first use, so that `import hkt.signals` in a job's first line stays cheap.
"""

import importlib

_EXPORTS = {
    "genetic_attention": "hkt.attention",
    "ETM": "hkt.etm",
    "Mixture": "hkt.etm",
    "Transfer": "hkt.etm",
    "Inheritance": "hkt.inheritance",
    "InheritanceOutput": "hkt.inheritance",
    "build_inheritance": "hkt.inheritance",
    "merge_blocks": "hkt.inheritance",
    "loss_weights": "hkt.weights",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hkt' has no attribute {name!r}")
