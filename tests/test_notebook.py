"""The sample notebook runs top to bottom and every result shows as an HTML table."""
import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from conftest import SAMPLES  # noqa: E402


def test_sample_notebook_executes_and_renders_tables():
    nb = nbformat.read(os.path.join(SAMPLES, "archscope.ipynb"), as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": SAMPLES}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if o.output_type == "execute_result" and "text/html" in o["data"]]
    assert len(html) == 5  # trace, check, memory, compare, and the graph's interactive view
    assert "46,764,746" in html[0] and "RF" in html[0]
    assert "in_features=6400" in html[1] and "9216" in html[1]
    assert "largest batch" in html[2]
    assert "resnet18" in html[3]
    assert 'class="archscope"' in html[4] and '"b3.0.p4_2"' in html[4]  # its data reaches every conv
    svg = [o["data"]["image/svg+xml"] for o in outputs if o.output_type == "execute_result" and "image/svg+xml" in o["data"]]
    assert len(svg) == 1 and "<svg" in svg[0] and "b3.0.p4_2" in svg[0] and "Inception" not in svg[0]  # depth 3: the convs
    plain = [o["data"]["text/plain"] for o in outputs if o.output_type == "execute_result"
             and "text/html" not in o["data"] and "image/svg+xml" not in o["data"]]
    assert plain == ["([1, 6400], 46764746)"]
