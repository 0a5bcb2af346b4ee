"""Test helpers that ship with huntbook, for our plugins and third parties' alike.

- :mod:`huntbook.testing.loopback`: a loopback HTTP server with fault injection;
- :mod:`huntbook.testing.ti`: the contract suite every online TI provider passes;
- :mod:`huntbook.testing.drivers`: the contract suite every data-source driver passes, and local servers;
- :mod:`huntbook.testing.browser`: pages in headless Chromium (JS errors, network requests, screenshots).

Importing the contract suites needs pytest; the browser harness needs selenium and Debian's chromium.
"""
