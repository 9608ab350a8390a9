"""A deterministic, seeded simulator for the Raft core: network faults, crashes, clients.

``python -m quorus.raft.sim --seed N`` replays one scenario exactly; ``--seeds 0..K`` soaks.
"""
