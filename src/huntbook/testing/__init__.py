"""Test helpers that ship with huntbook, for our plugins and third parties' alike.

- :mod:`huntbook.testing.loopback`: a loopback HTTP server with fault injection;
- :mod:`huntbook.testing.ti`: the contract suite every online TI provider passes.

Importing :mod:`huntbook.testing.ti` needs pytest.
"""
