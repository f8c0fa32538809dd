"""The `hamdb` command line: commands only (parse, call one function below, print).

Installed as `hamdb.cli`. Each `cmd_<name>.py` defines one click command or group called
`command`; `main.py` finds them by file name and imports a module only when its command runs
(or for `--help`), so no heavy import (torch, pymatgen, h5py) slows down the CLI.
"""
