"""Entry point of the `hamdb` console script.

Commands are discovered by file name: `cmd_<name>.py` holds the top-level command `<name>`,
and a group made with `LazyGroup(prefix="<group>_")` finds its subcommands in
`<group>_<sub>.py`. Modules are imported only when needed, and none imports a heavy library at
module level, so `hamdb --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click

from hamdb.errors import HamdbError

CLI_DIR = Path(__file__).resolve().parent


class LazyGroup(click.Group):
    """A click group whose subcommands are the `command` objects of `<prefix><name>.py` files."""

    def __init__(self, *args: Any, prefix: str = "cmd_", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prefix = prefix

    def list_commands(self, ctx: click.Context) -> list[str]:
        files = CLI_DIR.glob(f"{self.prefix}*.py")
        found = {p.stem[len(self.prefix) :].replace("_", "-") for p in files}
        return sorted(found | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        module_name = f"{self.prefix}{cmd_name.replace('-', '_')}"
        if not (CLI_DIR / f"{module_name}.py").is_file():
            return None
        module = importlib.import_module(f"hamdb.cli.{module_name}")
        return module.command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HamdbError as exc:
            state = ctx.find_object(CliState)
            if state is not None and state.debug:
                raise
            click.echo(f"hamdb: error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("hamdb: interrupted", err=True)
            ctx.exit(130)


class CliState:
    """What the top-level options say; the project is resolved only when a command asks."""

    def __init__(self, project: str | None, db: str | None, debug: bool) -> None:
        self.project_option = project
        self.db_option = db
        self.debug = debug

    def project(self) -> Any:
        """The resolved `hamdb.config.Project` (raises ConfigError if there is none)."""
        from hamdb.config import load_project

        return load_project(self.project_option, self.db_option)


@click.group(cls=LazyGroup, prefix="cmd_", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project",
    type=click.Path(file_okay=False),
    envvar="HAMDB_PROJECT",
    help="Project folder (default: $HAMDB_PROJECT or the current folder).",
)
@click.option(
    "--db",
    "db",
    envvar="HAMDB_DATABASE_URL",
    help="Database URL overriding hamdb.toml, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test.",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
@click.version_option(package_name="hamdb")
@click.pass_context
def cli(ctx: click.Context, project: str | None, db: str | None, debug: bool) -> None:
    """hamdb: crystal structures, their spin-orbit Hamiltonians, an equivariant model that
    predicts them, and a Z2 screen for topological insulators.

    \b
    Typical loop:
      hamdb init demo && cd demo
      hamdb ingest structures crystals.zip
      hamdb predict --pending --screen
      hamdb candidates --min-gap 0.05 --z2 strong
    """
    ctx.obj = CliState(project, db, debug)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="hamdb")


if __name__ == "__main__":
    sys.exit(main())
