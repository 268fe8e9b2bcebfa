"""The torch core: algorithms and model handling, with no Django imports.

The Django side turns rows into plain values, calls these functions, and stores what comes back.
"""
