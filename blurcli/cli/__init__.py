"""The `blurcli` command: parse arguments, call the library, print. Nothing else lives here.

A module per command (blur, predict, evaluate, train, label, export, serve), registered here in the order
`--help` lists them, around the app (`app.py`: errors caught once), the options the commands share
(`options.py`), what they print (`output.py`) and a batch run's progress and summary (`runs.py`).
"""

from blurcli.cli.app import app, main
from blurcli.cli.blur import blur
from blurcli.cli.evaluate import evaluate
from blurcli.cli.export import export
from blurcli.cli.label import label
from blurcli.cli.predict import predict
from blurcli.cli.serve import serve
from blurcli.cli.train import train

for name, command in (
    ("blur", blur),
    ("predict", predict),
    ("eval", evaluate),
    ("train", train),
    ("label", label),
    ("export", export),
    ("serve", serve),
):
    app.command(name)(command)

__all__ = ["app", "main"]
