"""Tags an executed chapter for the book (run by the Makefile on each notebook papermill writes): papermill's
injected-parameters cell is removed from the page (the parameters cell above it already shows the defaults, and the
run's values are in chapter 08), and the input of every cell that only draws a chart is folded away, its chart kept.

    python book/_ext/hide_cells.py CHAPTER.ipynb
"""

import json
import sys

CHART_CALL = "charts."


def tag(notebook: dict) -> dict:
    for cell in notebook["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        source = "".join(cell.get("source", ""))
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        elif cell["cell_type"] == "code" and source.lstrip().startswith(CHART_CALL) and "hide-input" not in tags:
            tags.append("hide-input")
    return notebook


if __name__ == "__main__":
    path = sys.argv[1]
    with open(path) as handle:
        notebook = tag(json.load(handle))
    with open(path, "w") as handle:
        json.dump(notebook, handle, indent=1, ensure_ascii=False)
