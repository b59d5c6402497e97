"""``python -m pollinator_simulator [--host H] [--port P] [--db FILE] [--allow-remote]``."""

import sys

import click

from pollinator_core.cli.simulator import serve
from pollinator_core.errors import PollinatorError


def main() -> int:
    try:
        serve.main(prog_name="python -m pollinator_simulator", standalone_mode=False)
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except PollinatorError as err:
        print(f"Error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
