"""``dnabird env``: report the software and hardware dnabird runs on (for bug reports)."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform

from dnabird import __version__

#: Distributions whose versions matter to results and speed.
REPORTED_PACKAGES = (
    "torch",
    "lightning",
    "sentencepiece",
    "pyfaidx",
    "biopython",
    "pyarrow",
    "h5py",
    "numpy",
    "safetensors",
    "torchmetrics",
    "transformers",
)


def environment_report() -> dict[str, str]:
    """Return {name: version or 'not installed'} for dnabird, Python, key packages and devices."""
    report = {
        "dnabird": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in REPORTED_PACKAGES:
        try:
            report[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            report[name] = "not installed"
    try:
        import torch
    except ImportError:
        return report
    from dnabird.model.attention import cpu_kernel

    report["torch threads"] = str(torch.get_num_threads())
    report["cpu attention kernel"] = cpu_kernel.status()
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        report["cuda"] = f"{torch.version.cuda} ({', '.join(names)})"
    else:
        report["cuda"] = "not available"
    return report


def _run(args: argparse.Namespace) -> None:
    report = environment_report()
    width = max(map(len, report))
    for name, value in report.items():
        print(f"{name:<{width}}  {value}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``env`` subcommand."""
    parser = subparsers.add_parser(
        "env", help="print versions of dnabird, its dependencies and the devices it sees"
    )
    parser.set_defaults(func=_run)
