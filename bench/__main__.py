import sys

from . import stops


def main():
    """The `bench` command. `bench run` holds a stop that comes while torch imports (bench/stops.py)."""
    if sys.argv[1:2] == ["run"]:
        stops.hold()
    from .cli import main as cli_main
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
