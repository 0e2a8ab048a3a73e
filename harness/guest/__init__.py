"""The in-guest side. Runs inside the VM under the system python3.

Nothing in this package imports from the host side of ``harness``: the agent talks to
the host only through files in the one read-write results directory (a job file in, JSON
lines out), whose shape is guest/protocol.py. tests/test_guest_agent.py enforces the rule.
"""
