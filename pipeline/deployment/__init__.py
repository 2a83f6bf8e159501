"""What a trained model costs to deploy: its size, its non-zero weights, and its inference latency and throughput.

``inference``: the one timing helper every run's cost goes through; ``weights``: counting a network's weights
(dense, pruned or int8) and their non-zeros.
"""
