"""``python -m pipeline.paradigms.federated.flower export DIR`` | ``run DIR --superlink HOST:PORT``."""

from __future__ import annotations

from pathlib import Path

from pipeline.cli import ArgumentParser, cli_entry
from pipeline.params import DEFAULT_PARAMS_FILE, load_params


@cli_entry
def main() -> None:
    parser = ArgumentParser(prog="python -m pipeline.paradigms.federated.flower", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    export = commands.add_parser("export", help="write the federated run as a Flower app, client files, server files")
    export.add_argument("dir", type=Path)
    export.add_argument("--params", type=Path, default=Path(DEFAULT_PARAMS_FILE))
    export.add_argument("--partition", help="one of federated.partitions (default: the first)")
    export.add_argument("--strategy", help="one of federated.strategies (default: the first)")
    run = commands.add_parser("run", help="run an exported app on a Flower SuperLink and its SuperNodes")
    run.add_argument("dir", type=Path)
    run.add_argument("--superlink", required=True, help="HOST:PORT of the SuperLink")
    security = run.add_mutually_exclusive_group(required=True)
    security.add_argument("--insecure", action="store_true", help="no TLS (loopback or a trusted network only)")
    security.add_argument("--root-certificates", type=Path, help="the CA certificate (PEM) the SuperLink's TLS uses")
    args = parser.parse_args()
    if args.command == "export":
        from pipeline.paradigms.federated.flower.export import export_app

        recipe = export_app(load_params(args.params), args.dir, args.partition, args.strategy)
        print(
            f"{args.dir}: {recipe.partition}/{recipe.strategy}, {recipe.num_clients} clients; see {args.dir}/README.md"
        )
        return
    from pipeline.paradigms.federated.flower.connection import run_exported

    result = run_exported(args.dir, args.superlink, args.insecure, args.root_certificates)
    metrics = result["metrics"]
    rounds = int(metrics["fl/rounds"])
    print(
        f"{result['variant']} on Flower: {rounds} round{'' if rounds == 1 else 's'}, "
        f"test/acc {metrics['test/acc']:.4f}, {metrics['comm/bytes_total'] / 1e6:.2f} MB sent"
    )


if __name__ == "__main__":
    main()
