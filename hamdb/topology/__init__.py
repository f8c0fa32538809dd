"""Topological invariants of SOC Hamiltonians: band gap, Z2 by Wannier-charge-centre flow,
Fu–Kane parity cross-check (see `analyse`)."""

from hamdb.topology.analysis import TopologyReport, TopologySettings, analyse

__all__ = ["TopologyReport", "TopologySettings", "analyse"]
