"""HKT: Hereditary Knowledge Transfer (arXiv 2508.09743) as a library.

    genetic_attention        eq. (2)
    Transfer, Mixture, ETM   the Extraction-Transfer-Mixture triad, eq. (3)
    Inheritance, build_inheritance
                             Algorithm 1 for any aligned parent/child block lists
    loss_weights             the constraints on eq. (9)
"""
from hkt.attention import genetic_attention
from hkt.etm import ETM, Mixture, Transfer
from hkt.inheritance import Inheritance, InheritanceOutput, build_inheritance, merge_blocks
from hkt.weights import loss_weights

__all__ = ["genetic_attention", "ETM", "Mixture", "Transfer", "Inheritance", "InheritanceOutput",
           "build_inheritance", "merge_blocks", "loss_weights"]
