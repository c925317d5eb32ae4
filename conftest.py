"""Root of the test tree. With --import-mode=importlib and the repo root on sys.path, pytest
would take the folder `contracts/` for the package `contracts`; importing the installed
package first keeps `contracts` meaning contracts/src/contracts for every suite."""

import contracts  # noqa: F401
