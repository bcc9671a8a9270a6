"""Stage 8, evaluation: score maps against inventories and models on patch-store splits.

``metrics`` holds streamed confusion counts and threshold sweeps; ``score`` applies them to maps
and patch stores.
"""
