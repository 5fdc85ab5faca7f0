import subprocess
import sys

from rq_exporter_ng.families.catalogue import CATALOGUE
from rq_exporter_ng.settings import Settings
from support import ROOT


def test_readme_tables_are_generated_from_the_code():
    result = subprocess.run([sys.executable, "scripts/readme.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_metric_and_setting_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for spec in CATALOGUE:
        assert f"`{spec.name}`" in readme
    for name in Settings.model_fields:
        assert f"`--{name.replace('_', '-')}`" in readme


def test_the_module_table_lists_every_module_and_no_other():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| module | holds |"):]
    table = table.split("\n\n")[0]
    listed = {line.split("`")[1] for line in table.splitlines()[2:]}
    package = ROOT / "rq_exporter_ng"
    modules = {p.relative_to(package).as_posix() for p in package.rglob("*.py")} - {"__init__.py"}
    assert listed == modules
